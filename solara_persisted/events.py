"""The ``solara.state`` log lines: one greppable ``word key=value ...`` line per event, each counted.

Every event goes through here so the log and the ``/resourcez`` counters can never disagree.
Values that contain spaces, quotes, ``=`` or unprintable characters are double-quoted with
backslash escapes, so a line stays one line and ``grep 'reason=superseded'`` keeps working.
Alert-worthy events (a bail-out, the breaker opening, supersessions, oversize values) log at
WARNING, everything else at INFO.
"""

from __future__ import annotations

import logging
from typing import Literal

from .stats import Stats

RestoreResult = Literal["success", "timeout", "bailout", "miss", "fresh-schema"]
FlushResult = Literal["ok", "rejected", "error"]
Transition = Literal["open", "half_open", "closed"]
CloseReason = Literal["page-close", "cull", "superseded", "server-shutdown", "evicted"]

_RESTORE_COUNTERS = {
    "success": "restore_success",
    "timeout": "restore_timeout",
    "bailout": "restore_bailout",
    "miss": "restore_miss",
    "fresh-schema": "restore_schema_reset",
}
_FLUSH_COUNTERS = {"ok": "flush_ok", "rejected": "flush_rejected", "error": "flush_failures"}
_TRANSITIONS = frozenset({"open", "half_open", "closed"})
_CLOSE_REASONS = frozenset({"page-close", "cull", "superseded", "server-shutdown", "evicted"})
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
        counter = _lookup(_RESTORE_COUNTERS, result, "restore result")
        self.stats.count("restore_attempts")
        self.stats.count(counter)
        if nbytes:
            self.stats.count("restore_bytes_total", nbytes)
        level = logging.WARNING if result == "bailout" else logging.INFO
        fields = {"result": result, "kernel": kernel_id, "key": key, "cause": cause, "from": source}
        self._emit(level, "restore", fields)

    def flush(self, result: FlushResult, kernel_id: str, n_fields: int) -> None:
        """One fenced write of a kernel's batch: acknowledged, fenced out (rejected) or failed."""
        self.stats.count(_lookup(_FLUSH_COUNTERS, result, "flush result"))
        level = logging.INFO if result == "ok" else logging.WARNING
        self._emit(level, "flush", {"result": result, "kernel": kernel_id, "n_fields": n_fields})

    def synced(self, key: str, kernel_id: str, nbytes: int) -> None:
        """One acknowledged field write, for the sync tables (its flush line already logged it)."""
        self.stats.synced(key, kernel_id, nbytes)

    def breaker(self, transition: Transition, reason: str) -> None:
        if transition not in _TRANSITIONS:
            raise ValueError(f"unknown breaker transition {transition!r}; use one of {sorted(_TRANSITIONS)}")
        self.stats.count("breaker_transitions")
        level = logging.WARNING if transition == "open" else logging.INFO
        self._emit(level, "breaker", {"transition": transition, "reason": reason})

    def close(self, reason: CloseReason, kernel_id: str, deleted: bool) -> None:
        """A kernel closed; ``deleted`` says whether its state was removed (only a genuine tab close)."""
        if reason not in _CLOSE_REASONS:
            raise ValueError(f"unknown close reason {reason!r}; use one of {sorted(_CLOSE_REASONS)}")
        if reason == "superseded":
            self.stats.count("superseded_closes")
        level = logging.WARNING if reason == "superseded" else logging.INFO
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


def _lookup(table: dict[str, str], value: str, what: str) -> str:
    try:
        return table[value]
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}; use one of {sorted(table)}") from None
