"""The bail-out storm valve: when most restores of the last minute bail out, the cause is the
fleet's (mismatched secrets, a bad deploy), not one user's, and a refresh dialog per user helps
nobody, so the Solara integration soft-re-mounts them fresh instead."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

#: The valve looks at restores of the last minute, once there are enough of them.
STORM_WINDOW = 60.0
STORM_MIN_RESTORES = 10
STORM_MAX_SAMPLES = 10_000


class StormValve:
    """Remembers recent restores; ``tripped`` when at least ``threshold`` of them bailed out."""

    def __init__(self, threshold: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = threshold
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: collections.deque[tuple[float, bool]] = collections.deque()

    def record(self, bailed_out: bool) -> None:
        with self._lock:
            self._recent.append((self._clock(), bailed_out))
            if len(self._recent) > STORM_MAX_SAMPLES:
                self._recent.popleft()

    def tripped(self) -> bool:
        now = self._clock()
        with self._lock:
            while self._recent and self._recent[0][0] < now - STORM_WINDOW:
                self._recent.popleft()
            bailouts = sum(1 for _, bailed in self._recent if bailed)
            total = len(self._recent)
        return total >= STORM_MIN_RESTORES and bailouts / total >= self._threshold
