"""The model a chaos history must satisfy, and the verdicts where it does not.

Input: every simulated user's records (``chaos_client``: what it sent, what the server
acknowledged, every restore it saw) and the fleet's fault log (``chaos_fleet``). Values are
``u<user>-<command>`` strings and every command also sets ``seq``, so a restored state names
the command it claims to be the state after. The rules, as the chaos issue states them:

1. ``foreign``: every restored value is one this user set, or the default.
2. ``lost``: a restore is never older than what was acknowledged before the fault. After a
   graceful shutdown (SIGTERM, a rolling deploy) that is the last value; after a SIGKILL or a
   pause the loss is at most the debounce plus one flush (longer only while the instance could
   not reach Redis, until it could again and its breaker let it write, or while it answered its
   clients late: a flush waits for the same CPU, so the longest queueing any of its clients saw
   from one flush before the value's acknowledgement to when its write was due, round trip less
   handler time, is added).
3. ``back-in-time``: a later restore of a session is never older than an earlier one, and a
   command an earlier restore showed lost never comes back. A restore that read nothing (Redis
   unreachable) shows nothing lost: it forks the session, and the next restore that read Redis
   says which side won (the page that started fresh once it claimed the session, else the state
   stored before); the other side's commands are lost from then on.
4. ``torn``: a restored state is exactly the state after its ``seq`` command: values set in one
   event are restored together or not at all.
5. ``schema``: a restore never bails out; it resets to a fresh schema only across a
   ``SOLARA_STATE_SCHEMA_TAG`` change, and a spec bump restores migrated values.
6. ``latency``: while Redis is slow or down no interaction waits longer than the connect
   timeout, measured where persistence could make it wait: the instance's event handler (the
   app reports its time), with an allowance for a loaded 2-core machine. The round trip a user
   sees adds the machine's queueing (a fresh instance rendering twenty pages at once) and is
   reported, not judged; a history without the handler's time is judged on the round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

KEYS = ("a", "b", "c")
DEFAULT = ""
_VALUE = re.compile(r"u(\d+)-(\d+)")
#: Faults after which an instance's unwritten values may be lost (it never drains).
UNGRACEFUL = frozenset({"kill", "pause"})
#: Restores that read nothing because Redis could not be reached: the documented fresh start.
DEGRADED = frozenset({"skipped", "timeout"})
#: Faults that shut an instance down with a drain: every acknowledged value must survive.
GRACEFUL = frozenset({"terminate"})
#: Faults during which an instance cannot write to Redis, or only slowly (each logs a start and an
#: ``<kind>_end``; ``instance`` None means every instance).
OUTAGES = frozenset({"redis_pause", "redis_down", "redis_full", "redis_slow", "link_cut"})


@attrs.frozen
class Violation:
    rule: str
    user: int
    t: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Bounds:
    """What the model allows: the debounce and one flush, the breaker's window after an outage,
    the connect timeout, and the allowance for a loaded machine (all seconds)."""

    debounce: float
    flush: float = 1.0
    breaker_window: float = 2.0
    retry: float = 1.0
    connect_timeout: float = 2.0
    machine: float = 2.0
    handler: float = 0.5  # the allowance for an event handler's own time on a loaded machine


@attrs.frozen
class Outage:
    """A window in which ``instance`` (None: every instance) could not write to Redis."""

    start: float
    end: float
    instance: str | None
    kind: str


def outages(faults: Sequence[Mapping[str, Any]], end: float) -> list[Outage]:
    """Pair each outage's start and end records (an outage still open at ``end`` ends there)."""
    open_: dict[tuple[str, str | None], float] = {}
    found: list[Outage] = []
    for fault in faults:
        kind, instance = fault["kind"], fault.get("instance")
        if kind in OUTAGES:
            open_[(kind, instance)] = fault["t"]
        elif kind.endswith("_end") and (kind[:-4], instance) in open_:
            start = open_.pop((kind[:-4], instance))
            found.append(Outage(start, fault["t"], instance, kind[:-4]))
    found.extend(Outage(start, end, instance, kind) for (kind, instance), start in open_.items())
    return found


def durable_at(
    acked: float,
    instance: str,
    windows: Sequence[Outage],
    bounds: Bounds,
    lags: Sequence[tuple[float, float, float]] = (),
) -> float:
    """When a value acknowledged at ``acked`` on ``instance`` is in Redis at the latest.

    ``lags``: (sent, answered, seconds answered late) of the instance's commands (``instance_lags``);
    those in flight from one flush before ``acked`` to the due time say how far behind it was.
    """
    due = acked + bounds.debounce + bounds.flush
    for window in sorted(windows, key=lambda w: w.start):
        # The breaker a window opened stays open up to its window after the outage, and the
        # writer retries on its own schedule: a window counts until then.
        if window.instance not in (None, instance) or window.end + bounds.breaker_window + bounds.retry < acked:
            continue
        if window.start > due:
            continue
        due = max(due, window.end + bounds.breaker_window + bounds.retry + bounds.debounce + bounds.flush)
    since = acked - bounds.flush
    return due + max((late for sent, answered, late in lags if answered >= since and sent <= due), default=0.0)


def instance_lags(users: Iterable[_User]) -> dict[str, list[tuple[float, float, float]]]:
    """Per instance, (sent, answered, how late) of every acknowledged command: how late is its
    round trip less the handler's own time, which is what the instance's CPU queue added."""
    lags: dict[str, list[tuple[float, float, float]]] = {}
    for user in users:
        for acked, seq, instance in user.acks:
            sent = user.sent_at.get(seq)
            if sent is not None:
                lags.setdefault(instance, []).append((sent, acked, acked - sent - user.handled.get(seq, 0.0)))
    return lags


@attrs.define
class _User:
    uid: int
    sends: dict[int, dict[str, str]] = attrs.field(factory=dict)  # seq -> values set
    sent_at: dict[int, float] = attrs.field(factory=dict)
    acks: list[tuple[float, int, str]] = attrs.field(factory=list)  # (time, seq, instance)
    handled: dict[int, float] = attrs.field(factory=dict)  # seq -> the handler's seconds, when reported
    restores: list[dict[str, Any]] = attrs.field(factory=list)
    dropped: set[int] = attrs.field(factory=set)  # commands a restore showed lost: never part of a later state


def _users(records: Iterable[Mapping[str, Any]]) -> dict[int, _User]:
    users: dict[int, _User] = {}
    for record in sorted(records, key=lambda r: r["t"]):
        user = users.setdefault(record["user"], _User(record["user"]))
        kind = record["kind"]
        if kind == "send":
            user.sends[record["seq"]] = dict(record["set"])
            user.sent_at[record["seq"]] = record["t"]
        elif kind == "ack":
            user.acks.append((record["t"], record["seq"], record.get("instance", "")))
            if record.get("handled_ms") is not None:
                user.handled[record["seq"]] = record["handled_ms"] / 1000
        elif kind == "restore":
            user.restores.append(dict(record))
    return users


def _expected(user: _User, seq: int) -> dict[str, str]:
    """The state right after command ``seq``: every command up to it that no restore showed lost."""
    state = dict.fromkeys(KEYS, DEFAULT)
    for n in sorted(user.sends):
        if n <= seq and n not in user.dropped:
            state.update(user.sends[n])
    return state


def check(
    records: Iterable[Mapping[str, Any]],
    faults: Sequence[Mapping[str, Any]],
    instances: Mapping[str, Mapping[str, Any]],
    bounds: Bounds,
    *,
    end: float,
) -> list[Violation]:
    """Every violation of the six rules in one schedule's history.

    ``instances`` maps an instance name to its settings (``tag``: the schema tag it ran with).
    """
    windows = outages(faults, end)
    # (when, kind, instance, when it began): a graceful shutdown is logged once it is over, and
    # its drain ran from when it began.
    losses = sorted(
        (f["t"], f["kind"], f["instance"], f.get("began", f["t"]))
        for f in faults
        if f["kind"] in UNGRACEFUL | GRACEFUL
    )
    users = _users(records)
    lags = instance_lags(users.values())
    found: list[Violation] = []
    for user in users.values():
        found.extend(_check_user(user, windows, losses, instances, bounds, lags))
    return found


def _check_user(
    user: _User,
    windows: Sequence[Outage],
    losses: Sequence[tuple[float, str, str, float]],
    instances: Mapping[str, Mapping[str, Any]],
    bounds: Bounds,
    lags: Mapping[str, Sequence[tuple[float, float, float]]],
) -> Iterable[Violation]:
    previous: dict[str, Any] | None = None
    last_read: dict[str, Any] | None = None  # the last restore that read Redis
    forks: list[float] = []  # when each restore that read nothing began, since the last that read Redis
    for restore in user.restores:
        t, values, seq = restore["t"], restore["values"], restore["seq"]
        result = restore.get("result")
        if forks and result not in DEGRADED:
            # The restored command's side of each fork won: everything sent before the fork it
            # follows is gone (newer commands of the other side are dropped below, as any loss).
            sent = user.sent_at.get(seq, 0.0) if seq else forks[-1]
            point = max((fork for fork in forks if fork <= sent), default=None)
            if point is not None:
                user.dropped.update(n for n, at in user.sent_at.items() if at < point)
                last_read = None  # the fresh page's side won: what was read before it is not owed
            forks.clear()
        for key in KEYS:
            value = values.get(key, DEFAULT)
            match = _VALUE.fullmatch(value) if value else None
            if value and (match is None or int(match.group(1)) != user.uid):
                yield Violation("foreign", user.uid, t, f"{key}={value!r} restored for user {user.uid}")
        if result == "bailout":
            yield Violation("schema", user.uid, t, f"a bail-out on {restore.get('instance')}")
        fresh = result == "fresh-schema"
        if fresh and previous is not None:
            before, now = instances.get(previous.get("instance", ""), {}), instances.get(restore.get("instance", ""), {})
            # A fresh-schema restore writes nothing: the older tag's state stays until the page's
            # first write lands, so the next restore at the same tag is fresh-schema too unless a
            # write was owed since (seed 1502013: a kill right after the deploy's restores).
            unwritten = previous.get("result") == "fresh-schema" and (
                _required(user, restore, previous, windows, losses, bounds, lags) is None
            )
            if before.get("tag") == now.get("tag") and not unwritten:
                yield Violation("schema", user.uid, t, f"fresh-schema without a tag change ({now.get('tag')!r})")
        if seq in user.dropped:
            yield Violation(
                "back-in-time", user.uid, t, f"command {seq} restored after an earlier restore showed it lost"
            )
        elif seq and not fresh:
            expected = _expected(user, seq)
            if {key: values.get(key, DEFAULT) for key in KEYS} != expected:
                yield Violation(
                    "torn", user.uid, t, f"restored {dict(values)} as the state after command {seq}, which is {expected}"
                )
        if last_read is not None and not fresh and result not in DEGRADED and seq < last_read["seq"]:
            yield Violation(
                "back-in-time", user.uid, t, f"command {seq} restored after command {last_read['seq']} was"
            )
        if not fresh and result not in DEGRADED:
            required = _required(user, restore, previous, windows, losses, bounds, lags)
            if required is not None and seq < required[0]:
                yield Violation("lost", user.uid, t, f"restored command {seq}, but command {required[0]} ({required[1]})")
        previous = restore
        began = restore.get("connect_t", t)
        if result in DEGRADED:
            forks.append(began)
            continue
        last_read = restore
        # Commands sent before this restore and newer than what it restored are gone for good (a
        # loss the rules above judged): the state continues from the restored command.
        user.dropped.update(n for n, at in user.sent_at.items() if n > seq and at < began)
    for seq, sent, waited in _latencies(user):
        if not _during(sent, windows):
            continue
        handled = user.handled.get(seq)
        if handled is not None and handled > bounds.connect_timeout + bounds.handler:
            yield Violation("latency", user.uid, sent, f"an event handler took {handled:.1f}s during a Redis fault")
        elif handled is None and waited > bounds.connect_timeout + bounds.machine:
            yield Violation("latency", user.uid, sent, f"an interaction waited {waited:.1f}s during a Redis fault")


def _required(
    user: _User,
    restore: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    windows: Sequence[Outage],
    losses: Sequence[tuple[float, str, str, float]],
    bounds: Bounds,
    lags: Mapping[str, Sequence[tuple[float, float, float]]],
) -> tuple[int, str] | None:
    """The newest command this restore must contain, and why; None when nothing is owed."""
    t = restore["t"]
    connected = previous["t"] if previous is not None else 0.0
    acks = [ack for ack in user.acks if connected <= ack[0] < restore.get("connect_t", t)]
    if not acks:
        return None
    holder = acks[-1][2]
    if restore.get("live") and restore.get("instance") == holder:
        return acks[-1][1], f"acknowledged at {acks[-1][0]:.2f} by the live kernel it reconnected to"
    # Else a kernel another instance kept alive since an earlier connection (seed 964): it holds
    # only what Redis held for it, so what the acknowledging instance owed is judged as for any restore.
    late = lags.get(holder, ())
    lost = [loss for loss in losses if loss[2] == holder and acks[-1][0] <= loss[0] <= t]
    if not lost:
        # The holder lived on and the session moved anyway (the engine closed it, say): what it
        # had written by the time the client reconnected is owed (its outages excuse the rest).
        began = restore.get("connect_t", t)
        owed = [ack for ack in acks if durable_at(ack[0], holder, windows, bounds, late) <= began]
        if not owed:
            return None
        return owed[-1][1], f"durable on {holder}, which lived on, by the reconnect at {began:.2f}"
    at, kind, _, began = lost[0]
    if kind in GRACEFUL and not any(_overlaps(w, holder, began, at, bounds) for w in windows):
        owed = [ack for ack in acks if ack[0] < at]
        why = f"acknowledged before the graceful {kind} of {holder} at {at:.2f}"
    else:
        # A graceful shutdown's drain is the holder's last write (its writer stops there): what
        # was durable by the time it began is owed, not what would have been by the time it ended.
        until = began if kind in GRACEFUL else at
        owed = [ack for ack in acks if durable_at(ack[0], holder, windows, bounds, late) <= until]
        why = f"durable before the {kind} of {holder} at {until:.2f}"
    if not owed:
        return None
    return owed[-1][1], f"{why}, was acknowledged at {owed[-1][0]:.2f}"


def _overlaps(window: Outage, instance: str, began: float, at: float, bounds: Bounds) -> bool:
    """Whether Redis was out for ``instance`` at some time from ``began`` to ``at``: until the
    breaker the outage opened lets a call through again, its window after the outage."""
    return (
        window.instance in (None, instance)
        and window.start <= at
        and began <= window.end + bounds.breaker_window
    )


def _latencies(user: _User) -> Iterable[tuple[int, float, float]]:
    """(seq, sent, round trip) of every acknowledged command."""
    for acked, seq, _ in user.acks:
        sent = user.sent_at.get(seq)
        if sent is not None:
            yield seq, sent, acked - sent


def _during(t: float, windows: Sequence[Outage]) -> bool:
    return any(window.start <= t <= window.end for window in windows)
