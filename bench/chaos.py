"""The fleet chaos checker: seeded random faults against a real fleet, every restore checked.

    python bench/chaos.py --seed 1 --schedules 20 --clients 50 [--json PATH]

One redis-server and three ``solara run --production`` instances of ``chaos_app.py`` run behind a
sticky loopback proxy (``chaos_fleet``). Each schedule starts its own simulated users
(``chaos_client``: Solara's websocket protocol, no browser), runs a seeded random sequence of
overlapping faults while they work, heals the fleet, and finally reads every user's session
from Redis as an instance that never held it would (the schedule's last failover). The users'
records and the fault log are then checked against the model (``chaos_model``); every violation
is printed with its seed and schedule, and a failing schedule is shrunk to the fewest faults
that still fail. The last line is ``chaos: schedules=K faults=F restores=R restore_success=S/T
violations=V``; the exit status is 0 only when V is 0.

``--plant NAME`` runs the fleet with a known bug (``chaos_plants``) to show the checker finds it.
Every process started is stopped at the end; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import runpy
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (BENCH, ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from chaos_client import User  # noqa: E402
from chaos_fleet import ChaosFleet  # noqa: E402
from chaos_model import DEGRADED, OUTAGES, Bounds, Violation, check, outages  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from solara_persisted.config import Settings  # noqa: E402
from solara_persisted.engine import Engine  # noqa: E402
from solara_persisted.spec import registry  # noqa: E402

APP = BENCH / "chaos_app.py"
#: Every fault kind a schedule draws from, and how long one lasts when it is a window (seconds).
FAULTS = (
    "kill",
    "terminate",
    "pause",
    "rolling_deploy",
    "spec_bump",
    "tag_bump",
    "redis_pause",
    "redis_kill",
    "redis_latency",
    "redis_maxmemory",
    "link_cut",
    "rotate_keys",
)
#: The fleet's settings: a short debounce and breaker window keep a schedule a few seconds long
#: (``--debounce`` lengthens the window a crash may lose, so a test can make a bug certain to show).
DEBOUNCE = 0.2
BREAKER_WINDOW = 2.0
CONNECT_TIMEOUT = 0.3


@attrs.frozen
class Step:
    """One fault at ``at`` seconds into the schedule; a window fault ends ``length`` later."""

    at: float
    kind: str
    target: int = 0
    length: float = 0.0


@attrs.define
class Outcome:
    index: int
    seed: int
    steps: list[Step]
    records: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    violations: list[Violation]
    instances: dict[str, dict[str, Any]]


def parse_steps(text: str) -> list[Step]:
    """``kind@at[:target[:length]],...``: a schedule given by hand (a minimal one, replayed)."""
    steps = []
    for item in filter(None, text.split(",")):
        kind, _, rest = item.partition("@")
        at, target, length = [*rest.split(":"), "0", "0"][:3]
        if kind not in FAULTS:
            raise ValueError(f"unknown fault kind {kind!r} in --steps; use one of {', '.join(FAULTS)}")
        steps.append(Step(float(at), kind, int(target), float(length)))
    return sorted(steps, key=lambda step: step.at)


def format_steps(steps: Sequence[Step]) -> str:
    return ",".join(f"{s.kind}@{s.at:g}:{s.target}:{s.length:g}" for s in steps)


def draw(seed: int, kinds: Sequence[str], seconds: float, instances: int) -> list[Step]:
    """A seeded schedule: 1-4 faults at random times in the first two thirds, windows overlapping."""
    rng = random.Random(seed)
    steps = [
        Step(
            at=round(rng.uniform(0.5, seconds * 2 / 3), 2),
            kind=rng.choice(list(kinds)),
            target=rng.randrange(instances),
            length=round(rng.uniform(0.5, 2.5), 2),
        )
        for _ in range(rng.randint(1, 4))
    ]
    return sorted(steps, key=lambda step: step.at)


class Chaos:
    """Runs schedules on one fleet; the fleet outlives them, healed and topped up after each."""

    def __init__(self, fleet: ChaosFleet, *, clients: int, seconds: float, console: Console) -> None:
        self.fleet = fleet
        self.debounce = fleet.debounce
        self.clients = clients
        self.seconds = seconds
        self.console = console
        self._next_uid = 1
        self._tag = 1
        self._version = 1
        self._rotated = False

    def run(self, index: int, seed: int, steps: Sequence[Step]) -> Outcome:
        records: list[dict[str, Any]] = []
        fault_log: list[dict[str, Any]] = []
        uids = range(self._next_uid, self._next_uid + self.clients)
        self._next_uid += self.clients
        sessions = {uid: (str(uuid.uuid4()), secrets.token_urlsafe(16)) for uid in uids}
        start = time.monotonic()
        users = [
            User(uid, self.fleet.url, random.Random(seed * 100_003 + uid), records, session=sessions[uid])
            for uid in sessions
        ]
        # Users work until the last fault is over (a rolling deploy outlasts the schedule's
        # seconds), and at least the schedule's seconds.
        working = threading.Thread(target=self._work, args=(users, start + self.seconds + 600), daemon=True)
        working.start()
        windows: list[tuple[float, Step]] = []
        for step in steps:
            self._sleep_until(start + step.at, windows, fault_log)
            self._apply(step, fault_log)
            if step.length:
                windows.append((time.monotonic() + step.length, step))
        stop_at = max(start + self.seconds, time.monotonic() + 1.0)
        for user in users:
            user.stop_at = stop_at
        self._sleep_until(stop_at, windows, fault_log)
        for user in users:  # again: a user whose run() began late set its own deadline over ours
            user.stop_at = min(user.stop_at, stop_at)
        working.join(timeout=60)
        self._heal(windows, fault_log)
        self._final_read(sessions, records, fault_log)
        end = time.monotonic()
        if self._rotated:
            # This schedule's sessions are never read again (the TTL the runbook waits has passed
            # for them): the retired key leaves the ring before the next schedule.
            self.fleet.rolling_deploy(secret_keys=self.fleet.secret_keys[:1])
            self.fleet.secret_keys = self.fleet.secret_keys[:1]
            self._rotated = False
        instances = {i.name: {"tag": i.tag, "version": i.version} for i in self.fleet.all_instances()}
        bounds = Bounds(
            debounce=self.debounce, breaker_window=BREAKER_WINDOW, connect_timeout=CONNECT_TIMEOUT, machine=2.0
        )
        violations = check(records, fault_log, instances, bounds, end=end)
        return Outcome(index, seed, list(steps), records, fault_log, violations, instances)

    # -- users ----------------------------------------------------------------------------

    @staticmethod
    def _work(users: Sequence[User], stop_at: float) -> None:
        async def main() -> None:
            await asyncio.gather(*(user.run(stop_at) for user in users))

        asyncio.run(main())

    # -- faults ---------------------------------------------------------------------------

    def _log(self, fault_log: list[dict[str, Any]], kind: str, instance: str | None, **detail: Any) -> None:
        fault_log.append({"t": time.monotonic(), "kind": kind, "instance": instance, **detail})

    def _apply(self, step: Step, fault_log: list[dict[str, Any]]) -> None:
        """Inject ``step``; a fault the fleet cannot inject right now (Redis already down for a
        pause, say) is logged as ``fault_error`` and the schedule goes on."""
        try:
            self._inject(step, fault_log)
        except (redis.RedisError, OSError, RuntimeError, TimeoutError) as error:
            self._log(fault_log, "fault_error", None, fault=step.kind, error=str(error))

    def _inject(self, step: Step, fault_log: list[dict[str, Any]]) -> None:
        fleet = self.fleet
        up = fleet.up_instances()
        target = up[step.target % len(up)] if up else None
        kind = step.kind
        if kind in ("kill", "terminate", "pause") and (target is None or len(up) < 2):
            return  # keep one instance serving: a fleet with none left tests nothing
        if kind == "kill":
            self._log(fault_log, "kill", target.name)  # before: a value due after it is not owed
            fleet.kill(target)
        elif kind == "terminate":
            began = time.monotonic()
            fleet.terminate(target)
            # Logged after: everything it acknowledged is owed, unless Redis was out while it drained.
            self._log(fault_log, "terminate", target.name, began=began)
        elif kind == "pause":
            self._log(fault_log, "pause", target.name)
            fleet.pause(target)
        elif kind in ("rolling_deploy", "spec_bump", "tag_bump", "rotate_keys"):
            self._deploy(kind, fault_log)
        elif kind == "redis_pause":
            self._log(fault_log, "redis_pause", None)
            fleet.redis_pause(step.length)
        elif kind == "redis_kill":
            self._log(fault_log, "redis_down", None)
            fleet.redis_kill()
        elif kind == "redis_latency":
            self._log(fault_log, "redis_slow", None)
            fleet.redis_latency(random.Random(step.at).uniform(0.02, 0.2))
        elif kind == "redis_maxmemory":
            self._log(fault_log, "redis_full", None)
            fleet.redis_maxmemory(True)
        elif kind == "link_cut" and target is not None:
            self._log(fault_log, "link_cut", target.name)
            fleet.cut_link(target)

    def _deploy(self, kind: str, fault_log: list[dict[str, Any]]) -> None:
        """Replace every instance in turn; each old one is terminated (graceful) once its successor serves."""
        changes: dict[str, Any] = {}
        if kind == "spec_bump":
            self._version = 3 - self._version  # 1 -> 2 -> 1: old and new read each other's state
            changes["version"] = self._version
        elif kind == "tag_bump":
            self._tag += 1
            changes["schema_tag"] = f"t{self._tag}"
        before = {instance.name for instance in self.fleet.instances}
        if kind == "rotate_keys":
            if self._rotated:
                return  # the runbook retires a key a whole TTL after the roll: one rotation per schedule
            self._rotated = True
            self.fleet.rotate_keys(retire=False)
        else:
            for old in list(self.fleet.instances):
                began = time.monotonic()
                self.fleet.replace(old, **changes)
                self._log(fault_log, "terminate", old.name, began=began)
        if kind == "rotate_keys":
            current = {instance.name for instance in self.fleet.instances}
            for name in sorted(before - current):
                self._log(fault_log, "terminate", name)

    def _end_window(self, step: Step, fault_log: list[dict[str, Any]]) -> None:
        try:
            self._heal_one(step, fault_log)
        except (redis.RedisError, OSError, RuntimeError, TimeoutError) as error:
            self._log(fault_log, "fault_error", None, fault=f"{step.kind}_end", error=str(error))

    def _heal_one(self, step: Step, fault_log: list[dict[str, Any]]) -> None:
        fleet = self.fleet
        if step.kind == "pause":
            for paused in fleet.paused_instances():
                fleet.resume(paused)
        elif step.kind == "redis_pause":
            self._log(fault_log, "redis_pause_end", None)
        elif step.kind == "redis_kill":
            fleet.redis_restart()
            self._log(fault_log, "redis_down_end", None)
        elif step.kind == "redis_latency":
            fleet.redis_latency(0.0)
            self._log(fault_log, "redis_slow_end", None)
        elif step.kind == "redis_maxmemory":
            fleet.redis_maxmemory(False)
            self._log(fault_log, "redis_full_end", None)
        elif step.kind == "link_cut":
            for cut in fleet.cut_instances():
                fleet.restore_link(cut)
                self._log(fault_log, "link_cut_end", cut.name)

    def _sleep_until(self, deadline: float, windows: list[tuple[float, Step]], fault_log: list[dict[str, Any]]) -> None:
        while True:
            now = time.monotonic()
            due = [window for window in windows if window[0] <= now]
            for window in due:
                windows.remove(window)
                self._end_window(window[1], fault_log)
            if now >= deadline:
                return
            time.sleep(min(0.05, deadline - now))

    def _heal(self, windows: list[tuple[float, Step]], fault_log: list[dict[str, Any]]) -> None:
        for _, step in windows:
            self._end_window(step, fault_log)
        windows.clear()
        self.fleet.top_up()

    # -- the schedule's last failover -----------------------------------------------------

    def _final_read(self, sessions: dict[int, tuple[str, str]], records: list[dict[str, Any]], fault_log: list[dict[str, Any]]) -> None:
        """Read every user's session from Redis as a fresh instance would, after the writes are due.

        Each instance is logged as lost at that moment (nothing is owed that was not durable by
        then). After a Redis fault the wait includes the breaker's window and the writer's retry,
        so that what the users changed during the fault is owed too."""
        outage_ends = [f["t"] for f in fault_log if f["kind"].endswith("_end")]
        recovered = max(outage_ends, default=0.0) + BREAKER_WINDOW + 1.0
        time.sleep(max(self.debounce + 1.0, recovered + self.debounce + 1.0 - time.monotonic()))
        at = time.monotonic()
        for instance in self.fleet.all_instances():
            fault_log.append({"t": at, "kind": "kill", "instance": instance.name, "final": True})
        newest = self.fleet.instances[-1]
        settings = Settings.from_env({**self.fleet.instance_env(newest), "SOLARA_STATE_URL": self.fleet.redis_url})
        with registry.isolated():
            declare_specs(newest.version)
            engine = Engine(settings)
            try:
                for uid, (kernel_id, cookie) in sessions.items():
                    restored = engine.restore(kernel_id, cookie)
                    values = restored.values
                    note = values.get("chaos.c")
                    records.append(
                        {
                            "t": at,
                            "user": uid,
                            "kind": "restore",
                            "values": {
                                "a": values.get("chaos.a", ""),
                                "b": values.get("chaos.b", ""),
                                "c": getattr(note, "text", "") if note is not None else "",
                            },
                            "seq": values.get("chaos.seq", 0),
                            "result": str(restored.result),
                            "cause": restored.cause,
                            "instance": "checker",
                            "live": False,
                            "final": True,
                        }
                    )
            finally:
                engine.close()


def declare_specs(version: int) -> None:
    """The app's specs, declared in this process for the final read (same keys, types, versions)."""
    os.environ["CHAOS_APP_VERSION"] = str(version)
    runpy.run_path(str(APP), run_name="chaos_app_specs")


# -- shrinking and reporting ----------------------------------------------------------------


def shrink(chaos: Chaos, outcome: Outcome, budget: int) -> list[Step]:
    """The fewest faults of a failing schedule that still fail (greedy: drop one at a time)."""
    steps = list(outcome.steps)
    tries = 0
    changed = True
    while changed and len(steps) > 1 and tries < budget:
        changed = False
        for i in range(len(steps)):
            candidate = steps[:i] + steps[i + 1 :]
            tries += 1
            if chaos.run(outcome.index, outcome.seed, candidate).violations:
                steps = candidate
                changed = True
                break
    return steps


def summarise(outcomes: Sequence[Outcome], console: Console) -> tuple[str, dict[str, Any]]:
    faults = _fault_counts(outcomes)
    restores = [r for o in outcomes for r in o.records if r["kind"] == "restore"]
    after_graceful = [r for o in outcomes for r in _after_graceful(o)]
    graceful = [r for r in after_graceful if r.get("result") not in DEGRADED]  # those that read Redis
    broken = {(v.user, v.t) for o in outcomes for v in o.violations}
    # A fresh-schema restore across a schema-tag bump is the documented outcome (the model calls
    # any other one a violation).
    succeeded = [
        r for r in graceful if r.get("result") in ("success", "miss", "fresh-schema") and (r["user"], r["t"]) not in broken
    ]
    latencies = [r["latency_ms"] for o in outcomes for r in o.records if r["kind"] == "ack" and "latency_ms" in r]
    windows = [w * 1000 for o in outcomes for w in _kill_loss_windows(o)]
    during_records = [r for o in outcomes for r in _acks_during_outages(o)]
    during = [r["latency_ms"] for r in during_records]
    handled = [r["handled_ms"] for r in during_records if r.get("handled_ms") is not None]
    violations = [v for o in outcomes for v in o.violations]
    table = Table(title="chaos")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("schedules", str(len(outcomes)))
    for kind, count in sorted(faults.items()):
        table.add_row(f"faults: {kind}", str(count))
    table.add_row("restores", str(len(restores)))
    table.add_row(
        "restores after a graceful shutdown: correct (no violation)", f"{len(succeeded)}/{len(graceful)}"
    )
    table.add_row("restores after a graceful shutdown that read nothing (Redis out)", str(len(after_graceful) - len(graceful)))
    if latencies:
        table.add_row("interaction p50 / p99 (ms)", f"{_pct(latencies, 50):.0f} / {_pct(latencies, 99):.0f}")
    if during:
        table.add_row(
            f"interaction during Redis faults p50 / p99 / max (ms), {len(during)}",
            f"{_pct(during, 50):.0f} / {_pct(during, 99):.0f} / {max(during):.0f}",
        )
    if handled:
        table.add_row(
            "  of which in the event handler p50 / p99 / max (ms)",
            f"{_pct(handled, 50):.1f} / {_pct(handled, 99):.1f} / {max(handled):.1f}",
        )
    if windows:
        table.add_row(
            f"loss window on SIGKILL p50 / p99 / max (ms), {len(windows)} restores",
            f"{_pct(windows, 50):.0f} / {_pct(windows, 99):.0f} / {max(windows):.0f}",
        )
    for rule, count in sorted(Counter(v.rule for v in violations).items()):
        table.add_row(f"violations: {rule}", str(count))
    console.print(table)
    last = (
        f"chaos: schedules={len(outcomes)} faults={sum(faults.values())} restores={len(restores)} "
        f"restore_success={len(succeeded)}/{len(graceful)} violations={len(violations)}"
    )
    totals = {
        "faults": dict(faults),
        "restores": len(restores),
        "graceful_restores": len(graceful),
        "graceful_success": len(succeeded),
        "interaction_ms": latencies,
        "interaction_during_redis_faults_ms": during,
        "kill_loss_window_ms": windows,
        "violations": len(violations),
    }
    return last, totals


def _fault_counts(outcomes: Sequence[Outcome]) -> Counter[str]:
    """Faults injected, by kind. An instance stops once: histories written before the fifth
    session logged every retired instance again at each key rotation, so a stop is counted once
    per instance and run (a run's schedules share one seed // 1000)."""
    faults: Counter[str] = Counter()
    stopped: set[tuple[int, str]] = set()
    for outcome in outcomes:
        for fault in outcome.faults:
            kind = fault["kind"]
            if fault.get("final") or kind.endswith("_end") or kind == "fault_error":
                continue
            if kind in ("kill", "terminate"):
                stop = (outcome.seed // 1000, fault["instance"])
                if stop in stopped:
                    continue
                stopped.add(stop)
            faults[kind] += 1
    return faults


def _kill_loss_windows(outcome: Outcome) -> list[float]:
    """For each restore that read Redis after the instance holding the session was SIGKILLed: how
    far back the acknowledged state went (seconds from the kill to the oldest acknowledged change
    the restore lacks; 0 when it lacks none)."""
    kills = [(f["t"], f["instance"]) for f in outcome.faults if f["kind"] == "kill" and not f.get("final")]
    acks: dict[int, list[dict[str, Any]]] = {}
    found = []
    for record in sorted(outcome.records, key=lambda r: r["t"]):
        if record["kind"] == "ack":
            acks.setdefault(record["user"], []).append(record)
            continue
        if record["kind"] != "restore" or record.get("live") or record.get("result") in DEGRADED:
            continue
        mine = acks.get(record["user"], [])
        if not mine:
            continue
        holder, since = mine[-1].get("instance"), mine[-1]["t"]
        killed = [at for at, name in kills if name == holder and since <= at <= record["t"]]
        if not killed:
            continue
        lost = [ack["t"] for ack in mine if ack.get("instance") == holder and ack["seq"] > record["seq"] and ack["t"] <= killed[0]]
        found.append(killed[0] - min(lost) if lost else 0.0)
        acks[record["user"]] = []  # the next restore is judged from the acks after this one
    return found


def _acks_during_outages(outcome: Outcome) -> list[dict[str, Any]]:
    """The acknowledgements of the interactions sent while Redis was slow, full, paused or down,
    or the link of the instance that answered was cut (``latency_ms``: send -> acknowledged)."""
    end = max((r["t"] for r in outcome.records), default=0.0)
    windows = [w for w in outages(outcome.faults, end) if w.kind in OUTAGES]
    found = []
    for record in outcome.records:
        if record["kind"] != "ack" or "latency_ms" not in record:
            continue
        sent = record["t"] - record["latency_ms"] / 1000
        if any(w.start <= sent <= w.end and w.instance in (None, record.get("instance")) for w in windows):
            found.append(record)
    return found


def _after_graceful(outcome: Outcome) -> list[dict[str, Any]]:
    """Restores on another instance right after the instance holding the session was terminated."""
    terminated = {f["instance"] for f in outcome.faults if f["kind"] == "terminate"}
    found = []
    last_instance: dict[int, str] = {}
    for record in sorted(outcome.records, key=lambda r: r["t"]):
        if record["kind"] == "ack":
            last_instance[record["user"]] = record.get("instance", "")
        elif (
            record["kind"] == "restore"
            and not record.get("live")
            and not record.get("final")
            and last_instance.get(record["user"]) in terminated
        ):
            found.append(record)
    return found


def _pct(values: Sequence[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def judge(paths: Sequence[Path], console: Console, out: Callable[[str], None]) -> int:
    """Check saved histories again with this model (the same verdicts, or a corrected model's)."""
    outcomes = []
    for path in paths:
        saved = json.loads(path.read_text())
        bounds = Bounds(
            debounce=saved.get("debounce", DEBOUNCE),
            breaker_window=BREAKER_WINDOW,
            connect_timeout=CONNECT_TIMEOUT,
            machine=2.0,
        )
        for schedule in saved["schedules"]:
            records, faults = schedule["records"], schedule["faults"]
            end = max((f["t"] for f in faults if f.get("final")), default=max(r["t"] for r in records))
            violations = check(records, faults, schedule["instances"], bounds, end=end)
            steps = [Step(**step) for step in schedule["steps"]]
            outcomes.append(Outcome(schedule["index"], schedule["seed"], steps, records, faults, violations, schedule["instances"]))
            for violation in violations[:10]:
                console.print(f"{path.name} schedule {schedule['index']}: [red]{violation.rule}[/] user={violation.user} {violation.detail}")
    last, totals = summarise(outcomes, console)
    out(last)
    return 0 if totals["violations"] == 0 else 1


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--schedules", type=int, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of one schedule's load (default 6)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="the fault kinds to draw from, comma-separated")
    parser.add_argument("--plant", choices=("fencing-off", "drain-skipped", "wrong-session"), help="a known bug to find")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument(
        "--debounce", type=float, default=DEBOUNCE, help=f"the fleet's SOLARA_STATE_FLUSH_DEBOUNCE (default {DEBOUNCE})"
    )
    parser.add_argument("--shrink", type=int, default=6, help="re-runs allowed to shrink a failing schedule")
    parser.add_argument("--json", type=Path, help="write the whole history and the verdicts here")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep Redis's dir and every instance's log in DIR (default: removed)"
    )
    parser.add_argument("--steps", help="run this schedule (kind@at[:target[:length]],...) instead of drawing")
    parser.add_argument(
        "--judge", type=Path, nargs="+", metavar="JSON", help="judge histories saved by --json again (no fleet)"
    )
    args = parser.parse_args(argv)
    if args.judge:
        return judge(args.judge, Console(stderr=True), out)
    try:
        given = parse_steps(args.steps) if args.steps else None
    except ValueError as error:
        parser.error(str(error))
    kinds = [kind for kind in args.faults.split(",") if kind]
    unknown = sorted(set(kinds) - set(FAULTS))
    if unknown:
        parser.error(f"unknown fault kinds {unknown}; use some of {', '.join(FAULTS)}")
    console = Console(stderr=True)
    outcomes: list[Outcome] = []
    shrunk: dict[int, list[Step]] = {}
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory(prefix="chaos-")
    ) as workdir, ChaosFleet(
        Path(workdir),
        app=APP,
        instances=args.instances,
        seed=args.seed,
        debounce=args.debounce,
        connect_timeout=CONNECT_TIMEOUT,
        breaker_window=BREAKER_WINDOW,
        plant=args.plant,
    ) as fleet:
        chaos = Chaos(fleet, clients=args.clients, seconds=args.seconds, console=console)
        for index in range(args.schedules):
            seed = args.seed * 1_000 + index
            steps = given if given is not None else draw(seed, kinds, args.seconds, args.instances)
            outcome = chaos.run(index, seed, steps)
            outcomes.append(outcome)
            console.print(
                f"schedule {index} seed={seed} faults={[(s.kind, s.at) for s in steps]} "
                f"restores={sum(r['kind'] == 'restore' for r in outcome.records)} violations={len(outcome.violations)}"
            )
            for violation in outcome.violations[:10]:
                console.print(f"  [red]{violation.rule}[/] user={violation.user} {violation.detail}")
            if outcome.violations:
                shrunk[index] = shrink(chaos, outcome, args.shrink) if args.shrink else steps
                replay = f"--seed {args.seed} --schedules 1 --clients {args.clients} --seconds {args.seconds:g}"
                plant = f" --plant {args.plant}" if args.plant else ""
                console.print(
                    f"  minimal schedule (seed {seed}): python bench/chaos.py {replay}{plant} "
                    f"--steps {format_steps(shrunk[index])}"
                )
    last, totals = summarise(outcomes, console)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "seed": args.seed,
                    "debounce": args.debounce,
                    "totals": totals,
                    "schedules": [
                        {
                            "index": o.index,
                            "seed": o.seed,
                            "steps": [attrs.asdict(s) for s in o.steps],
                            "minimal": [attrs.asdict(s) for s in shrunk.get(o.index, [])],
                            "faults": o.faults,
                            "instances": o.instances,
                            "violations": [v.as_dict() for v in o.violations],
                            "records": o.records,
                        }
                        for o in outcomes
                    ],
                },
                indent=1,
                default=str,
            )
        )
    out(last)
    return 0 if totals["violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
