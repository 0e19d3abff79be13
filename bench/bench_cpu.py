"""CPU per change at a steady trickle: no engine, Solara's built-in engine and ours, in one process.

Run by hand, never as a test::

    .venv/bin/python bench/bench_cpu.py                     # 100 sessions, 50 changes/s, 3 rounds
    .venv/bin/python bench/bench_cpu.py --sessions 1000 --rate 200 --seconds 10
    .venv/bin/python bench/bench_cpu.py --log-lines --json /tmp/cpu.json  # as a server running ours logs

Why in process: what persistence costs a server is paid per change, on the event path (a change
listener) and in the background (each engine's writers). ``bench_fleet.py`` measures it over a
whole server, where Solara's own rendering (about 12 ms of CPU per change) and the machine's
noise bury a difference of a millisecond. Here the same load runs three ways in one process:

- ``off``: plain ``solara.reactive`` values, no persistence;
- ``solara``: Solara's engine on ``persist=True`` reactives, attached to each kernel as its
  server's connect path does, one flush thread per kernel (``bench_engine.SolaraSession``);
- ``ours``: one ``Engine``, a change listener per kernel and a snapshot in the kernel's context
  (``bench_engine.OursSession``).

``--sessions`` Solara kernel contexts; every 1/``--rate`` s one event in a random session sets an
int and a str (two keys, one event, as a handler would). Both engines write to one redis-server on
loopback (``bench_engine.redis_server``) with their default debounce, 300 ms, so changes trickle
in and each session's window closes on its own, which is a loaded server's normal state (the
full-path flushes of ``bench_engine.py`` measure the opposite: a 1 ms debounce at full speed).
The ``solara.state`` logger is at WARNING for both (``bench_engine.Declarations``), unless
``--log-lines``: then it is at INFO, its lines written to /dev/null, which is what ours costs in a
server (it turns on the operations spec's one line per flush and restore; ``solara run`` alone
shows only Solara's errors, so the Solara column then also pays for lines its server would drop).

Each side's window is ``--seconds`` of changes, then 1 s for the last writes to land, all counted;
rounds interleave the sides (off, Solara, ours, off, ...), each on fresh sessions, and the table
shows medians. Per side, per 1,000 changes:

- ``process CPU``: ``time.process_time()``, every thread;
- ``event path``: the CPU of the thread making the changes (the listeners run there);
- ``other threads``: process CPU less the event path (ours: the writer and the key-ring check;
  Solara: its flush threads and the timers they start; off: Solara's own background work);
- ``flushes`` acknowledged (each engine's own counter) and Redis round trips (redis-py's sends).

"Beyond off" is a side's process CPU less off's, in the same round: what the engine costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import bench_engine as kit
from rich.console import Console
from rich.table import Table

DEBOUNCE = 0.3  # both engines' default
SETTLE = 1.0  # after the window: the last debounce windows close and their writes land
SIDES = ("off", "solara", "ours")


@attrs.define
class Load:
    """One side's sessions: the contexts, the two reactives every event sets, and the engine's
    acknowledged-flush counter (None for off)."""

    contexts: list[Any]
    page: Any
    query: Any
    flushes: Callable[[], int] | None
    close: Callable[[], None]


def drive(load: Load, seconds: float, rate: float, rng: random.Random) -> int:
    """One event every 1/rate s in a random session for ``seconds``; returns how many."""
    n = 0
    start = time.perf_counter()
    while (due := start + n / rate) < start + seconds:
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        with rng.choice(load.contexts):
            load.page.value = n
            load.query.value = f"query {n}"
        n += 1
    return n


def measure(load: Load, seconds: float, rate: float, trips: kit.RoundTrips, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    drive(load, min(1.0, seconds), rate, rng)  # warm-up: first-use costs, connections, scripts
    time.sleep(SETTLE)
    flushes0 = load.flushes() if load.flushes else 0
    trips0, event0, cpu0 = trips.count, time.thread_time(), time.process_time()
    changes = drive(load, seconds, rate, rng)
    event_path = time.thread_time() - event0  # this thread sleeps through the settle: no CPU there
    time.sleep(SETTLE)
    cpu = time.process_time() - cpu0
    per = 1000 / changes
    return {
        "changes": changes,
        "cpu_ms": cpu * 1000 * per,
        "event_path_ms": event_path * 1000 * per,
        "other_threads_ms": (cpu - event_path) * 1000 * per,
        "flushes": ((load.flushes() if load.flushes else 0) - flushes0) * per,
        "round_trips": (trips.count - trips0) * per,
    }


def contexts(side: str, round_: int, sessions: int) -> list[Any]:
    return [kit.new_context(f"{side}-{round_}-{i}", f"{side}-{round_}-session-{i}") for i in range(sessions)]


def load_solara(port: int, decl: kit.Declarations, round_: int, sessions: int) -> Load:
    import solara.state as S

    backend = kit.solara_backend(port, sessions)
    made = contexts("solara", round_, sessions)
    workers = [kit.SolaraSession(backend, context, debounce=DEBOUNCE).worker for context in made]

    def close() -> None:
        for worker in workers:
            worker.close(timeout=1.0)
        backend.client.close()

    return Load(made, decl.solara_page, decl.solara_query, lambda: S.stats().flush_ok, close)


def load_ours(port: int, decl: kit.Declarations, round_: int, sessions: int) -> Load:
    from solara_persisted.engine import Engine

    engine = Engine(attrs.evolve(kit.ours_settings(port), flush_debounce=DEBOUNCE))
    engine.start()
    made = contexts("ours", round_, sessions)
    for context in made:
        kit.OursSession(engine, context, {"bench.page": decl.ours_page, "bench.query": decl.ours_query})

    def close() -> None:
        engine.drain(2.0)
        engine.close()

    return Load(made, decl.ours_page, decl.ours_query, lambda: kit.flush_ok(engine), close)


def run(args: argparse.Namespace, console: Console) -> dict[str, list[dict[str, float]]]:
    trips = kit.RoundTrips()
    results: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    with kit.redis_server() as port:
        kit.configure_solara(port)
        decl = kit.Declarations()
        if args.log_lines:
            state_logger = logging.getLogger("solara.state")
            state_logger.setLevel(logging.INFO)
            state_logger.handlers = [logging.StreamHandler(open(os.devnull, "w"))]  # noqa: SIM115
            state_logger.propagate = False
        import solara

        plain = (solara.reactive(0), solara.reactive(""))
        starts: dict[str, Callable[[int], Load]] = {
            "off": lambda r: Load(contexts("off", r, args.sessions), *plain, flushes=None, close=lambda: None),
            "solara": lambda r: load_solara(port, decl, r, args.sessions),
            "ours": lambda r: load_ours(port, decl, r, args.sessions),
        }
        for round_ in range(args.rounds):
            for side in SIDES:
                with console.status(f"round {round_ + 1}/{args.rounds}: {side}"):
                    load = starts[side](round_)
                    try:
                        results[side].append(measure(load, args.seconds, args.rate, trips, seed=round_))
                    finally:
                        load.close()
    return results


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(row[name] for row in rows) for name in rows[0]}


def beyond_off(results: dict[str, list[dict[str, float]]], side: str) -> float:
    """The median over rounds of a side's process CPU less off's in the same round."""
    return statistics.median(
        row["cpu_ms"] - off["cpu_ms"] for row, off in zip(results[side], results["off"], strict=True)
    )


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> Table:
    table = Table(
        title=f"CPU per 1,000 changes: {args.sessions} sessions, {args.rate:g} events/s (2 keys each), "
        f"debounce {DEBOUNCE * 1000:.0f} ms, state lines {'at INFO' if args.log_lines else 'off'}, "
        f"median of {args.rounds} rounds"
    )
    for column in ("measure", "off", "Solara", "ours", "ours/Solara"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    m = {side: medians(rows) for side, rows in results.items()}

    def row(label: str, name: str, fmt: str) -> None:
        cells = [format(m[side][name], fmt) for side in SIDES]
        table.add_row(label, *cells, f"{m['ours'][name] / m['solara'][name]:.2f}×" if m["solara"][name] else "")

    row("process CPU (ms)", "cpu_ms", ",.0f")
    ours, theirs = beyond_off(results, "ours"), beyond_off(results, "solara")
    table.add_row("  beyond off (ms)", "", f"{theirs:,.0f}", f"{ours:,.0f}", f"{ours / theirs:.2f}×")
    row("event path (ms)", "event_path_ms", ",.0f")
    row("other threads (ms)", "other_threads_ms", ",.0f")
    row("flushes acknowledged", "flushes", ",.0f")
    row("Redis round trips", "round_trips", ",.0f")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100, help="kernel contexts (default 100)")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second, all sessions (default 50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each side's window (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of off, Solara, ours (default 3)")
    parser.add_argument("--json", type=Path, help="also write every round's figures to this file")
    parser.add_argument(
        "--log-lines", action="store_true", help="the state lines at INFO, to /dev/null, as in a server running ours"
    )
    args = parser.parse_args()
    for name in ("sessions", "rate", "seconds", "rounds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be above zero")
    console = Console() if sys.stdout.isatty() else Console(width=150)
    results = run(args, console)
    console.print(report(results, args))
    console.print(kit.load_line([os.getloadavg()[0]]))
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rounds": results}, indent=2))


if __name__ == "__main__":
    main()
