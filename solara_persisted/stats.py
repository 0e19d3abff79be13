"""Counters behind the ``/resourcez`` ``state`` block and ``/metrics``, with the operations guide's field names.

Both answer "is the feature on right now, and what does it cost?" without any backend I/O:
everything here is counted in-process as events happen. The per-key and per-kernel sync
tables are bounded (500 labels each, then ``(other)``) so a key per user cannot grow memory
without limit, and key labels can be hashed because keys may embed user identifiers. The
histograms (restore and flush latency, envelope size) have fixed buckets, so their memory is
fixed too.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

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
#: Histograms and their upper bounds (Prometheus' ``le``; an implicit ``+Inf`` follows): seconds
#: from a LAN round trip to past the connect timeout, bytes from a counter to past the warn cap.
HISTOGRAMS: dict[str, tuple[float, ...]] = {
    "restore_seconds": (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    "flush_seconds": (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    "envelope_bytes": tuple(float(4**n) for n in range(3, 12)),  # 64 B ... 4 MiB
}
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


class _Histogram:
    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


@attrs.frozen
class Distribution:
    """A histogram as read: per-bucket counts (not cumulative; the last is above every bound)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)


@attrs.frozen
class Snapshot:
    """Everything counted, read at one instant under the lock; ``block`` and ``/metrics`` render it."""

    counts: dict[str, int]
    sync_count: int
    sync_bytes: int
    by_key: list[tuple[str, int, int]]  # (label, syncs, bytes), largest first
    by_kernel: list[tuple[str, int, int]]
    keys_dropped: int
    kernels_dropped: int
    last_ok_age: float | None
    last_error: str | None
    transitions: dict[str, int]  # breaker transitions by the state entered
    distributions: dict[str, Distribution]


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
    return not production or bearer_matches(token, authorization)


def bearer_matches(token: str, authorization: str | None) -> bool:
    """Whether ``Authorization`` is ``Bearer <token>``, compared in constant time; never for an empty token."""
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
        self._transitions: Counter[str] = Counter()
        self._histograms = {name: _Histogram(bounds) for name, bounds in HISTOGRAMS.items()}

    def count(self, name: str, n: int = 1) -> None:
        if name not in self._counts:
            raise KeyError(f"unknown counter {name!r}; counters are: {', '.join(sorted(COUNTERS))}")
        with self._lock:
            self._counts[name] += n

    def transitioned(self, state: str) -> None:
        """The breaker entered ``state`` (counted in ``breaker_transitions`` too, by ``Events``)."""
        with self._lock:
            self._transitions[state] += 1

    def observe(self, name: str, value: float) -> None:
        """One latency (seconds) or size (bytes) for the histogram ``name`` (see ``HISTOGRAMS``)."""
        histogram = self._histograms.get(name)
        if histogram is None:
            raise KeyError(f"unknown histogram {name!r}; histograms are: {', '.join(sorted(HISTOGRAMS))}")
        with self._lock:
            histogram.observe(value)

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
            self._histograms["envelope_bytes"].observe(nbytes)

    def snapshot(self, top: int = TABLE_LABELS + 1) -> Snapshot:
        """Every number at one instant; the sync tables' ``top`` rows by bytes (default: all)."""
        now = self._clock()
        with self._lock:
            return Snapshot(
                counts=dict(self._counts),
                sync_count=self._sync_count,
                sync_bytes=self._sync_bytes,
                by_key=self._by_key.top(top),
                by_kernel=self._by_kernel.top(top),
                keys_dropped=self._by_key.dropped,
                kernels_dropped=self._by_kernel.dropped,
                last_ok_age=None if self._last_ok is None else now - self._last_ok,
                last_error=self._last_error,
                transitions=dict(self._transitions),
                distributions={
                    name: Distribution(h.bounds, tuple(h.counts), h.total) for name, h in self._histograms.items()
                },
            )

    def block(
        self, *, enabled: bool, breaker_state: str, verbose: bool = False, reveal_keys: bool = True
    ) -> dict[str, Any]:
        """The ``state`` block: the guide's fields in its order, then ``EXTRA_FIELDS``."""
        taken = self.snapshot(TOP_VERBOSE if verbose else TOP)
        counts = taken.counts
        status = health(enabled=enabled, breaker_state=breaker_state, last_error=taken.last_error)
        block: dict[str, Any] = {"status": status, "circuit_breaker": breaker_state}
        block.update((name, counts[name]) for name in SPEC_FIELDS[2:13])
        age = taken.last_ok_age
        block["backend_last_ok_age_seconds"] = None if age is None else round(age, 1)
        block["backend_last_error"] = taken.last_error
        block["sync_count"] = taken.sync_count
        block["sync_bytes_total"] = taken.sync_bytes
        block["sync_mb_total"] = round(taken.sync_bytes / 1e6, 3)
        block["restore_bytes_total"] = counts["restore_bytes_total"]
        block["sync_keys_dropped"] = taken.keys_dropped
        block["sync_kernels_dropped"] = taken.kernels_dropped
        block["sync_by_key"] = [
            _row("key", shown_label(label, reveal_keys), syncs, nbytes) for label, syncs, nbytes in taken.by_key
        ]
        block["sync_by_kernel"] = [
            _row("kernel", label, syncs, nbytes) for label, syncs, nbytes in taken.by_kernel
        ]
        block.update((name, counts[name]) for name in EXTRA_FIELDS)
        return block


def health(*, enabled: bool, breaker_state: str, last_error: str | None) -> str:
    """The block's ``status``: degraded from the first failed call, not only once the breaker opens."""
    if not enabled:
        return "off"
    if breaker_state != "closed" or last_error is not None:
        return "degraded"
    return "healthy"


def shown_label(label: str, reveal: bool) -> str:
    """A key label as this reader may see it: hashed unless revealed (``(other)`` never is)."""
    return label if reveal or label == OTHER else hash_label(label)


def _row(column: str, label: str, syncs: int, nbytes: int) -> dict[str, Any]:
    return {column: label, "syncs": syncs, "bytes": nbytes, "bytes_per_sync": nbytes // syncs}
