"""Counters behind the ``/resourcez`` ``state`` block, with the operations guide's field names.

The block answers "is the feature on right now, and what does it cost?" without any backend
I/O: everything here is counted in-process as events happen. The per-key and per-kernel sync
tables are bounded (500 labels each, then ``(other)``) so a key per user cannot grow memory
without limit, and key labels can be hashed because keys may embed user identifiers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

#: The guide's ``state`` block, in its order.
SPEC_FIELDS = (
    "status",
    "circuit_breaker",
    "restore_attempts",
    "restore_success",
    "restore_bailout",
    "restore_miss",
    "restore_schema_reset",
    "flush_ok",
    "flush_rejected",
    "flush_failures",
    "breaker_transitions",
    "superseded_closes",
    "superseded_while_connected",
    "backend_last_ok_age_seconds",
    "backend_last_error",
    "sync_count",
    "sync_bytes_total",
    "sync_mb_total",
    "restore_bytes_total",
    "sync_keys_dropped",
    "sync_kernels_dropped",
    "sync_by_key",
    "sync_by_kernel",
)
#: Counted too, appended after the guide's fields: oversize skips (named in its Sizing section),
#: values dropped because their session is over its budget (``SOLARA_STATE_MAX_SESSION_*``) and
#: restore timeouts (attempts that are neither success, bail-out nor miss).
EXTRA_FIELDS = ("sync_oversize_dropped", "sync_budget_dropped", "restore_timeout")
#: What ``Stats.count`` accepts.
COUNTERS = frozenset(
    {
        "restore_attempts",
        "restore_success",
        "restore_bailout",
        "restore_miss",
        "restore_schema_reset",
        "restore_timeout",
        "restore_bytes_total",
        "flush_ok",
        "flush_rejected",
        "flush_failures",
        "breaker_transitions",
        "superseded_closes",
        "superseded_while_connected",
        "sync_oversize_dropped",
        "sync_budget_dropped",
    }
)
TABLE_LABELS = 500
OTHER = "(other)"
TOP = 10
TOP_VERBOSE = 100
KERNEL_LABEL_CHARS = 8
# Overflowing labels already counted as dropped; forgotten (and so counted again) past this size.
_DROPPED_MEMORY = 10 * TABLE_LABELS


class _Table:
    """Syncs and bytes per label, at most ``TABLE_LABELS`` labels plus ``(other)``."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}
        self.dropped = 0
        self._overflowed: set[str] = set()

    def add(self, label: str, nbytes: int) -> None:
        row = self.rows.get(label)
        if row is None:
            if len(self.rows) - (OTHER in self.rows) >= TABLE_LABELS:
                if label not in self._overflowed:
                    if len(self._overflowed) >= _DROPPED_MEMORY:
                        self._overflowed.clear()
                    self._overflowed.add(label)
                    self.dropped += 1
                label = OTHER
            row = self.rows.setdefault(label, [0, 0])
        row[0] += 1
        row[1] += nbytes

    def top(self, n: int) -> list[tuple[str, int, int]]:
        ranked = sorted(self.rows.items(), key=lambda item: (-item[1][1], item[0]))[:n]
        return [(label, syncs, nbytes) for label, (syncs, nbytes) in ranked]


#: Salts the hashed labels per process, so a guessed identifier (``user:42:filters``) cannot be
#: confirmed by hashing it; a hot key still shows as the same hash on every scrape of this process.
_LABEL_SALT = secrets.token_bytes(16)


def hash_label(label: str) -> str:
    """A key label as shown without the token: the numbers stay visible, the identifier does not."""
    return "sha256:" + hashlib.sha256(_LABEL_SALT + label.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def reveal_keys(*, production: bool, token: str, authorization: str | None) -> bool:
    """Whether ``/resourcez`` may show raw key labels: always outside production, else only with the token.

    A missing or wrong ``Authorization`` header falls back to hashed labels; it is never an error.
    """
    if not production:
        return True
    if not token or authorization is None:
        return False
    expected = f"Bearer {token}".encode("utf-8", "surrogatepass")
    return hmac.compare_digest(authorization.encode("utf-8", "surrogatepass"), expected)


class Stats:
    """Thread-safe counters; ``block`` renders the ``state`` block."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._sync_count = 0
        self._sync_bytes = 0
        self._by_key = _Table()
        self._by_kernel = _Table()
        self._last_ok: float | None = None
        self._last_error: str | None = None

    def count(self, name: str, n: int = 1) -> None:
        if name not in self._counts:
            raise KeyError(f"unknown counter {name!r}; counters are: {', '.join(sorted(COUNTERS))}")
        with self._lock:
            self._counts[name] += n

    def backend_ok(self) -> None:
        """A backend call succeeded: restart the age clock and clear the last error."""
        now = self._clock()
        with self._lock:
            self._last_ok = now
            self._last_error = None

    def backend_error(self, message: str) -> None:
        with self._lock:
            self._last_error = message

    def synced(self, key_label: str, kernel_id: str, nbytes: int) -> None:
        """One field write the backend acknowledged, ``nbytes`` envelope bytes long."""
        with self._lock:
            self._sync_count += 1
            self._sync_bytes += nbytes
            self._by_key.add(key_label, nbytes)
            self._by_kernel.add(kernel_id[:KERNEL_LABEL_CHARS], nbytes)

    def block(
        self, *, enabled: bool, breaker_state: str, verbose: bool = False, reveal_keys: bool = True
    ) -> dict[str, Any]:
        """The ``state`` block: the guide's fields in its order, then ``EXTRA_FIELDS``."""
        now = self._clock()
        top = TOP_VERBOSE if verbose else TOP
        with self._lock:
            counts = dict(self._counts)
            sync_count, sync_bytes = self._sync_count, self._sync_bytes
            keys, kernels = self._by_key.top(top), self._by_kernel.top(top)
            keys_dropped, kernels_dropped = self._by_key.dropped, self._by_kernel.dropped
            last_ok, last_error = self._last_ok, self._last_error
        if not enabled:
            status = "off"
        elif breaker_state != "closed" or last_error is not None:
            status = "degraded"  # from the first failed call, not only once the breaker opens
        else:
            status = "healthy"
        block: dict[str, Any] = {"status": status, "circuit_breaker": breaker_state}
        block.update((name, counts[name]) for name in SPEC_FIELDS[2:13])
        block["backend_last_ok_age_seconds"] = None if last_ok is None else round(now - last_ok, 1)
        block["backend_last_error"] = last_error
        block["sync_count"] = sync_count
        block["sync_bytes_total"] = sync_bytes
        block["sync_mb_total"] = round(sync_bytes / 1e6, 3)
        block["restore_bytes_total"] = counts["restore_bytes_total"]
        block["sync_keys_dropped"] = keys_dropped
        block["sync_kernels_dropped"] = kernels_dropped
        block["sync_by_key"] = [
            _row("key", label if reveal_keys or label == OTHER else hash_label(label), syncs, nbytes)
            for label, syncs, nbytes in keys
        ]
        block["sync_by_kernel"] = [_row("kernel", label, syncs, nbytes) for label, syncs, nbytes in kernels]
        block.update((name, counts[name]) for name in EXTRA_FIELDS)
        return block


def _row(column: str, label: str, syncs: int, nbytes: int) -> dict[str, Any]:
    return {column: label, "syncs": syncs, "bytes": nbytes, "bytes_per_sync": nbytes // syncs}
