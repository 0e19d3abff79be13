"""Debounce: when each session's changes are written.

A session's first change after a write opens its window (``SOLARA_STATE_FLUSH_DEBOUNCE``); later
changes inside it ride on the same write, so a slider dragged for a second costs one write, and
a crash loses at most the window. Due sessions come out earliest first and in batches, so one
round trip carries every session that is due, and those nearly due with it (the writer's
``COALESCE``). The writer calls it under its own lock.
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
        self._heap: list[tuple[float, int, Session]] = []
        self._order = itertools.count()  # equal due times keep their order; sessions never compare

    def schedule(self, session: Session, due: float) -> bool:
        """Set ``session``'s window to close at ``due``; True when it is now the earliest (wake the writer)."""
        session.due = due
        heapq.heappush(self._heap, (due, next(self._order), session))
        return self._heap[0][2] is session

    def wait(self, now: float) -> float | None:
        """Seconds until the earliest window closes (0 when one has), or None when none is open."""
        if not self._heap:
            return None
        return max(self._heap[0][0] - now, 0.0)

    def take_due(self, until: float, limit: int) -> list[Session]:
        """Up to ``limit`` sessions whose window closes by ``until``, earliest first, each unscheduled."""
        due_sessions: list[Session] = []
        while self._heap and self._heap[0][0] <= until and len(due_sessions) < limit:
            due, _, session = heapq.heappop(self._heap)
            if session.due != due or session.closed or session.stale:
                continue
            session.due = None
            due_sessions.append(session)
        return due_sessions
