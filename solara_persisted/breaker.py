"""The per-process circuit breaker that turns a Redis outage into a stateless fresh start.

While it is open, connects skip the takeover read and writes are skipped, so a brownout never
charges every connection the connect timeout. After the window one caller gets a half-open
probe; its outcome closes the breaker or opens it for another window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .events import Events

State = Literal["closed", "open", "half_open"]


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
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_at = 0.0

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """May the caller touch the backend now? In half_open, only the single probe holder may.

        A probe whose caller never reports back is presumed lost after another ``window``, and
        the next caller gets a fresh probe, so a crashed caller cannot wedge the breaker.
        """
        transition = None
        with self._lock:
            if self._state == "closed":
                return True
            now = self._clock()
            if self._state == "open":
                if now - self._opened_at < self._window:
                    return False
                self._state = "half_open"
                transition = "half_open"
            elif now - self._probe_at < self._window:
                return False
            self._probe_at = now
        if transition is not None:
            self._events.breaker(transition, f"{self._window:g}s window elapsed, probing the backend")
        return True

    def success(self) -> None:
        """A backend call succeeded: reset the consecutive count; a successful probe closes the breaker."""
        with self._lock:
            self._failures = 0
            if self._state != "half_open":
                return
            self._state = "closed"
        self._events.breaker("closed", "probe succeeded")

    def failure(self, reason: str) -> None:
        """A backend call failed: count it; the threshold or a failed probe opens the breaker."""
        with self._lock:
            if self._state == "open":
                return  # a call that started before the breaker opened; the window already runs
            self._failures += 1
            if self._state == "half_open":
                reason = f"probe failed: {reason}"
            elif self._failures < self._threshold:
                return
            else:
                reason = f"{self._failures} consecutive failures, last: {reason}"
            self._state = "open"
            self._opened_at = self._clock()
        self._events.breaker("open", reason)
