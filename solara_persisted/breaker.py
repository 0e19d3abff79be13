"""The per-process circuit breaker that turns a Redis outage into a stateless fresh start, and
the guard every backend call goes through.

While the breaker is open, connects skip the takeover read and writes are skipped, so a brownout
never charges every connection the connect timeout. After the window one caller gets a half-open
probe; its outcome closes the breaker or opens it for another window. ``BackendGuard`` is the one
place that asks the breaker and tells it and the stats how each call went, as redis-py wraps
every command in one retry guard.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .errors import BackendError, BreakerOpen
from .events import Transition

if TYPE_CHECKING:
    from .events import Events
    from .stats import Stats

_T = TypeVar("_T")


class Breaker:
    """closed -> open after ``failures`` consecutive errors -> half_open after ``window`` -> closed."""

    def __init__(
        self,
        failures: int,
        window: float,
        events: Events,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError(f"failures={failures}: the breaker needs at least one failure to open")
        self._threshold = failures
        self._window = window
        self._events = events
        self._clock = clock
        self._lock = threading.Lock()
        self._state = Transition.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_at = 0.0

    @property
    def state(self) -> Transition:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """May the caller touch the backend now? In half_open, only the single probe holder may.

        A probe whose caller never reports back is presumed lost after another ``window``, and
        the next caller gets a fresh probe, so a crashed caller cannot wedge the breaker.
        """
        transition = None
        with self._lock:
            if self._state is Transition.CLOSED:
                return True
            now = self._clock()
            if self._state is Transition.OPEN:
                if now - self._opened_at < self._window:
                    return False
                self._state = transition = Transition.HALF_OPEN
            elif now - self._probe_at < self._window:
                return False
            self._probe_at = now
        if transition is not None:
            self._events.breaker(transition, f"{self._window:g}s window elapsed, probing the backend")
        return True

    def give_back(self) -> None:
        """An allowed caller that made no call after all (nothing to send): in half_open the next
        caller probes at once, instead of everyone waiting a window for a report that never comes."""
        with self._lock:
            if self._state is Transition.HALF_OPEN:
                self._probe_at = self._clock() - self._window

    def success(self) -> None:
        """A backend call succeeded: reset the consecutive count; a successful probe closes the breaker."""
        with self._lock:
            self._failures = 0
            if self._state is not Transition.HALF_OPEN:
                return
            self._state = Transition.CLOSED
        self._events.breaker(Transition.CLOSED, "probe succeeded")

    def failure(self, reason: str) -> None:
        """A backend call failed: count it; the threshold or a failed probe opens the breaker."""
        with self._lock:
            if self._state is Transition.OPEN:
                return  # a call that started before the breaker opened; the window already runs
            self._failures += 1
            if self._state is Transition.HALF_OPEN:
                reason = f"probe failed: {reason}"
            elif self._failures < self._threshold:
                return
            else:
                reason = f"{self._failures} consecutive failures, last: {reason}"
            self._state = Transition.OPEN
            self._opened_at = self._clock()
        self._events.breaker(Transition.OPEN, reason)


class BackendGuard:
    """The one path from the engine to its backend: the breaker may refuse a call, and every
    call's outcome reaches both the breaker and the ``/resourcez`` stats."""

    def __init__(self, breaker: Breaker, stats: Stats) -> None:
        self.breaker = breaker
        self._stats = stats

    def allow(self) -> bool:
        """Whether a call may be made now (for callers that skip costly work when it may not)."""
        return self.breaker.allow()

    def unused(self) -> None:
        """``allow`` said yes but no call followed (``Breaker.give_back``)."""
        self.breaker.give_back()

    def call(self, operation: Callable[..., _T], *args: object, **kwargs: object) -> _T:
        """``operation(*args, **kwargs)`` if the breaker allows, its outcome recorded.

        Raises ``BreakerOpen`` (nothing sent, nothing recorded) or the call's ``BackendError``.
        """
        if not self.breaker.allow():
            raise BreakerOpen("the circuit breaker is open; the backend is not called until its window elapses")
        return self.call_allowed(operation, *args, **kwargs)

    def call_allowed(self, operation: Callable[..., _T], *args: object, **kwargs: object) -> _T:
        """``call`` for a step of work the breaker already allowed (a restore's follow-up write):
        a half-open probe is granted once, to the work's first call."""
        try:
            result = operation(*args, **kwargs)
        except BackendError as error:
            self.settle(error)
            raise
        self.settle(None)
        return result

    def settle(self, failure: BackendError | None) -> None:
        """Record how a call ended; a batch whose parts fail separately reports its last failure."""
        if failure is None:
            self.breaker.success()
            self._stats.backend_ok()
        else:
            self.breaker.failure(str(failure))
            self._stats.backend_error(str(failure))
