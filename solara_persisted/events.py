"""The ``solara.state`` log lines: one greppable ``word key=value ...`` line per event, each counted.

Every event goes through here so the log and the ``/resourcez`` counters can never disagree.
Values that contain spaces, quotes, ``=`` or unprintable characters are double-quoted with
backslash escapes, so a line stays one line and ``grep 'reason=superseded'`` keeps working.
Alert-worthy events (a bail-out, the breaker opening, supersessions, oversize values) log at
WARNING, everything else at INFO.
"""

from __future__ import annotations

import enum
import logging
from typing import TypeVar

from .stats import Stats


class Word(str, enum.Enum):
    """A word of a log vocabulary: compares, formats and serialises as its text (``result=miss``)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class RestoreResult(Word):
    """How a restore ended; every one but ``SKIPPED`` is logged and counted."""

    SUCCESS = "success"
    MISS = "miss"
    BAILOUT = "bailout"
    FRESH_SCHEMA = "fresh-schema"
    TIMEOUT = "timeout"
    #: Nothing was read: a refused kernel id, or the breaker open (degraded mode).
    SKIPPED = "skipped"


class FlushResult(Word):
    """How one fenced write of a session's batch ended."""

    OK = "ok"
    REJECTED = "rejected"
    ERROR = "error"


class Transition(Word):
    """A circuit-breaker state, and the transition into it."""

    OPEN = "open"
    HALF_OPEN = "half_open"
    CLOSED = "closed"


class CloseReason(Word):
    """Why a kernel closed; only ``PAGE_CLOSE`` (a genuine tab close) deletes its state."""

    PAGE_CLOSE = "page-close"
    CULL = "cull"
    SUPERSEDED = "superseded"
    SERVER_SHUTDOWN = "server-shutdown"
    EVICTED = "evicted"


_W = TypeVar("_W", bound=Word)

_RESTORE_COUNTERS = {
    RestoreResult.SUCCESS: "restore_success",
    RestoreResult.TIMEOUT: "restore_timeout",
    RestoreResult.BAILOUT: "restore_bailout",
    RestoreResult.MISS: "restore_miss",
    RestoreResult.FRESH_SCHEMA: "restore_schema_reset",
}
_FLUSH_COUNTERS = {FlushResult.OK: "flush_ok", FlushResult.REJECTED: "flush_rejected", FlushResult.ERROR: "flush_failures"}
_NEEDS_QUOTES = frozenset(' "=\\')


def quote(value: object) -> str:
    """A log field value: bare when it is safe, else double-quoted with backslash escapes."""
    text = str(value)
    if text and text.isprintable() and _NEEDS_QUOTES.isdisjoint(text):
        return text
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif char.isprintable():
            escaped.append(char)
        else:
            escaped.append(char.encode("unicode_escape").decode("ascii"))
    return '"' + "".join(escaped) + '"'


class Events:
    """Logs and counts every persistence event; the only writer of ``Stats`` counters."""

    def __init__(self, stats: Stats, logger: logging.Logger | None = None) -> None:
        self.stats = stats
        self.logger = logger if logger is not None else logging.getLogger("solara.state")

    def _emit(self, level: int, event: str, fields: dict[str, object]) -> None:
        if self.logger.isEnabledFor(level):
            parts = [event]
            parts.extend(f"{name}={quote(value)}" for name, value in fields.items() if value is not None)
            self.logger.log(level, "%s", " ".join(parts))

    def restore(
        self,
        result: RestoreResult,
        kernel_id: str,
        *,
        key: str | None = None,
        cause: str | None = None,
        nbytes: int = 0,
        source: str | None = None,
    ) -> None:
        """One restore attempt; ``nbytes`` are the envelope bytes read back; ``source`` (logged as
        ``from=``) names another format the state was read from (``solara-engine``)."""
        result = _word(RestoreResult, result, "restore result")
        counter = _counter(_RESTORE_COUNTERS, result)
        self.stats.count("restore_attempts")
        self.stats.count(counter)
        if nbytes:
            self.stats.count("restore_bytes_total", nbytes)
        level = logging.WARNING if result is RestoreResult.BAILOUT else logging.INFO
        fields = {"result": result, "kernel": kernel_id, "key": key, "cause": cause, "from": source}
        self._emit(level, "restore", fields)

    def flush(self, result: FlushResult, kernel_id: str, n_fields: int) -> None:
        """One fenced write of a kernel's batch: acknowledged, fenced out (rejected) or failed."""
        result = _word(FlushResult, result, "flush result")
        self.stats.count(_counter(_FLUSH_COUNTERS, result))
        level = logging.INFO if result is FlushResult.OK else logging.WARNING
        self._emit(level, "flush", {"result": result, "kernel": kernel_id, "n_fields": n_fields})

    def timed(self, histogram: str, seconds: float) -> None:
        """How long a restore or a batch write took (``restore_seconds``, ``flush_seconds``); no log line."""
        self.stats.observe(histogram, seconds)

    def synced(self, key: str, kernel_id: str, nbytes: int) -> None:
        """One acknowledged field write, for the sync tables (its flush line already logged it)."""
        self.stats.synced(key, kernel_id, nbytes)

    def breaker(self, transition: Transition, reason: str) -> None:
        transition = _word(Transition, transition, "breaker transition")
        self.stats.count("breaker_transitions")
        self.stats.transitioned(transition.value)
        level = logging.WARNING if transition is Transition.OPEN else logging.INFO
        self._emit(level, "breaker", {"transition": transition, "reason": reason})

    def close(self, reason: CloseReason, kernel_id: str, deleted: bool) -> None:
        """A kernel closed; ``deleted`` says whether its state was removed (only a genuine tab close)."""
        reason = _word(CloseReason, reason, "close reason")
        if reason is CloseReason.SUPERSEDED:
            self.stats.count("superseded_closes")
        level = logging.WARNING if reason is CloseReason.SUPERSEDED else logging.INFO
        self._emit(
            level, "close", {"reason": reason, "deleted": "true" if deleted else "false", "kernel": kernel_id}
        )

    def oversize(self, key: str, kernel_id: str, nbytes: int, limit: int, dropped: bool) -> None:
        """An envelope above the warn cap (still written) or the hard cap (skipped, counted)."""
        if dropped:
            self.stats.count("sync_oversize_dropped")
        self._emit(
            logging.WARNING,
            "oversize",
            {
                "action": "dropped" if dropped else "warned",
                "key": key,
                "kernel": kernel_id,
                "bytes": nbytes,
                "limit": limit,
            },
        )

    def over_budget(self, keys: list[str], kernel_id: str, budget: str, limit: int) -> None:
        """Values not written because the session would exceed its key count or byte budget."""
        self.stats.count("sync_budget_dropped", len(keys))
        self._emit(
            logging.WARNING,
            "budget",
            {
                "action": "dropped",
                "kernel": kernel_id,
                "over": budget,
                "limit": limit,
                "n_keys": len(keys),
                "key": keys[0] if len(keys) == 1 else ",".join(keys[:5]) + (",..." if len(keys) > 5 else ""),
            },
        )

    def superseded_while_connected(self, kernel_id: str) -> None:
        """Another connection took over a kernel whose own websocket was still open: broken
        stickiness, cross-instance multi-tab, or an attack."""
        self.stats.count("superseded_while_connected")
        self._emit(logging.WARNING, "superseded_while_connected", {"kernel": kernel_id})


def _word(vocabulary: type[_W], value: str, what: str) -> _W:
    """``value`` as a word of ``vocabulary``; a word outside it is a programming error, named."""
    try:
        return vocabulary(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}; use one of {sorted(w.value for w in vocabulary)}") from None


def _counter(table: dict[_W, str], word: _W) -> str:
    try:
        return table[word]
    except KeyError:
        raise ValueError(f"{word} is not counted; use one of {sorted(w.value for w in table)}") from None
