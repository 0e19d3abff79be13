"""Debounce: when each session's changes are written.

A session's first change after a write opens its window (``SOLARA_STATE_FLUSH_DEBOUNCE``); later
changes inside it ride on the same write, so a slider dragged for a second costs one write, and
a crash loses at most the window. Due sessions come out earliest first and in batches, so one
round trip carries every session that is due, and those nearly due with it (the writer's
``COALESCE``). A retry (a kernel that was mid-event) is never taken early: the batch that would
take it is formed for another session, and trying a kernel again before its event can end costs
the writer a wait for nothing. The writer calls it under its own lock.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .worker import Session


class DebounceSchedule:
    """Sessions by the time their window closes (``session.due``); an entry whose session was
    rescheduled, closed or fenced out since is skipped when it comes up."""

    def __init__(self) -> None:
        self._windows: list[tuple[float, int, Session]] = []  # may close early, with a batch
        self._retries: list[tuple[float, int, Session]] = []  # never before their time
        self._order = itertools.count()  # equal due times keep their order; sessions never compare

    def schedule(self, session: Session, due: float, *, exact: bool = False) -> bool:
        """Set ``session``'s window to close at ``due`` (``exact``: not before it); True when it is
        now the earliest (wake the writer)."""
        session.due = due
        heapq.heappush(self._retries if exact else self._windows, (due, next(self._order), session))
        head = self._head()
        return head is not None and head[2] is session

    def wait(self, now: float) -> float | None:
        """Seconds until the earliest window closes (0 when one has), or None when none is open."""
        head = self._head()
        return None if head is None else max(head[0] - now, 0.0)

    def _head(self) -> tuple[float, int, Session] | None:
        """The earliest entry of either heap."""
        if not self._retries:
            return self._windows[0] if self._windows else None
        if not self._windows:
            return self._retries[0]
        return min(self._windows[0], self._retries[0])

    def take_due(self, now: float, until: float, limit: int) -> list[Session]:
        """Up to ``limit`` sessions, each unscheduled: the retries due by ``now``, then the windows
        closing by ``until``, each earliest first."""
        due_sessions: list[Session] = []
        for heap, by in ((self._retries, now), (self._windows, until)):
            while heap and heap[0][0] <= by and len(due_sessions) < limit:
                due, _, session = heapq.heappop(heap)
                if session.due != due or session.closed or session.stale:
                    continue
                session.due = None
                due_sessions.append(session)
        return due_sessions
