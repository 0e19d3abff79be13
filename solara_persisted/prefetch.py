"""Takeovers started ahead of need, so their round trip overlaps Solara building the kernel.

A reconnect to an instance that does not hold its kernel arrives as a websocket. Solara then
builds a kernel (milliseconds, under its global init lock) and a context, and only the client's
first message on the new socket reads a persisted value. A takeover started when the websocket
arrives is usually finished by then, so the connection thread finds the result instead of
waiting a Redis round trip.

Nothing here is worse than doing the takeover on demand: a prefetch still queued when its result
is wanted is cancelled and the caller runs the takeover itself, and one nobody claims (the socket
went away) expires. It did nothing a connect would not have done.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: Concurrent prefetches; more reconnects than this queue, and a queued one is cancelled on claim.
WORKERS = 4
#: Pending prefetches kept at most; kernel ids are chosen by clients, so the table is bounded.
LIMIT = 256
#: An unclaimed prefetch older than this is dropped (its socket is long gone).
EXPIRY = 30.0


class Prefetcher(Generic[T]):
    """Run ``work(kernel_id, session_id)`` early on a small pool; hand the result to the first claim."""

    def __init__(
        self,
        work: Callable[[str, str], T],
        *,
        workers: int = WORKERS,
        limit: int = LIMIT,
        expiry: float = EXPIRY,
    ) -> None:
        self._work = work
        self._limit = limit
        self._expiry = expiry
        self._pool = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="solara-persisted-takeover"
        )
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], tuple[float, concurrent.futures.Future[T]]] = {}
        self._closed = False

    def start(self, kernel_id: str, session_id: str) -> bool:
        """Start the work for this kernel and session unless it is pending already or the table is full."""
        key = (kernel_id, session_id)
        now = time.monotonic()
        with self._lock:
            if self._closed or key in self._pending:
                return False
            self._expire(now)
            if len(self._pending) >= self._limit:
                return False
            self._pending[key] = (now, self._pool.submit(self._work, kernel_id, session_id))
        return True

    def claim(self, kernel_id: str, session_id: str) -> T | None:
        """The prefetched result (waiting for it if it is running), or None: run the work yourself."""
        with self._lock:
            entry = self._pending.pop((kernel_id, session_id), None)
        if entry is None:
            return None
        future = entry[1]
        if future.cancel():  # still queued behind other prefetches: the caller is quicker
            return None
        return future.result()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Drop every pending prefetch; the pool's threads end once their current work returns."""
        with self._lock:
            self._closed = True
            self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _expire(self, now: float) -> None:
        stale = [key for key, (started, _) in self._pending.items() if now - started > self._expiry]
        for key in stale:
            self._pending.pop(key)[1].cancel()
