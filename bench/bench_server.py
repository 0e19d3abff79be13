"""solara-persisted against Solara's built-in engine inside a Solara server: restore, drain, failover.

Run by hand, never as a test: ``.venv/bin/python bench/bench_server.py`` (``--help`` for the knobs).
It starts its own ``redis-server`` on a free loopback port (no RDB, no AOF; the one of
``bench_engine.py``), runs both engines against it, prints one table and kills the server. Only one
engine may be active in a process, so every in-process measure runs each engine in its own child
process of this script, which reports its numbers as one JSON line on stdout. Every loop is bounded
by a count or a deadline and every child by a timeout.

What each measure includes (both sides do the same work):

- restore step on a fresh instance: from "a kernel context is created for a kernel id this
  process does not know" to "the first read of every persisted reactive returned the restored
  value", for a session of five small values of mixed types, written beforehand by the parent
  process through each engine's own write path. A third side, "persist=True under ours", declares
  the same five reactives with Solara's own API (``solara.reactive(..., persist=True, key=...)``)
  in a process that imported solara_persisted, so our engine restores them through their untyped
  specs; its sessions are written by a child that declares them the same way. Ours: ``solara_integration.activate(Settings(...))``, then
  a ``VirtualKernelContext`` is built (its ``on_kernel_start`` hook installs our persistence) and the
  reactives are read inside ``with context:`` (the first read runs the takeover, as a connection's
  first message does in a server). Solara: its engine active through
  ``solara.server.settings.state``; the context is built and handed to
  ``kernel_context._restore_on_connect(context, backend, session_id)`` as ``initialize_virtual_kernel``
  does for a new context (takeover on its executor, ``attach``, its flush worker started), then the
  same reads. The ``Kernel`` object is built before the clock starts on both sides (it costs ~7 ms
  and is the same for both). Cold is the first restore in a fresh process (imports done, engine and
  backend connected), the median over a few processes; warm is the median of the later ones. Each
  context is closed (reason ``cull``) after its sample, off the clock, so few kernels are live.
- shutdown drain: N kernel contexts, each with two persisted values changed inside the context,
  nothing written yet. Ours: the writer thread is stopped right after activation, so every change
  waits, then ``engine.drain(timeout)``. Solara: one flush worker per kernel built by
  ``_restore_on_connect`` (a thread each, as its server does) with a debounce of an hour so none
  flushes early, then ``starlette._drain_state_workers(timeout)``, its shutdown pass (32 threads,
  one ``worker.close`` each). Both get the same deadline, Solara's server default of 5 s; written
  sessions are each engine's ``flush_ok`` count at return, checked against Redis. The contexts
  share one ``Kernel`` object (a real one costs ~15 ms and ~200 KB, and neither drain touches it).
- connect-to-visible in headless Chromium: two ``solara run`` instances (A, B) behind the loopback
  proxy of ``tests/e2e/fleet.py``, the same counter app on each engine (ours: tests/apps/persisted_counter.py,
  Solara's: bench/apps/builtin_counter.py with ``persist=True`` and no solara_persisted import),
  the same ``SOLARA_STATE_*`` environment. Three persisted and two plain clicks, wait until the
  instance's ``flush_ok`` is settled, switch the proxy to B, SIGKILL A, and time until the page
  shows "Persisted: 3" with "Plain: 0" (restored, re-mounted). The page records the moment (a
  MutationObserver) and every websocket ``open`` on its own wall clock, so the numbers do not
  depend on Playwright's polling: switch-to-visible starts at the proxy switch, ws-open-to-visible
  at the open of B's websocket. Median of a few runs per side, interleaved.

"Ours before" (``--before PATH``, a worktree of the previous commit): the restore step also runs
that checkout's ``solara_persisted``, in restore children of its own placed between ours and
Solara's (``BENCH_CODE_ROOT`` puts it first on ``sys.path``; each child reports the file it
imported and the parent refuses an answer from the wrong code). Its sessions are written by a
child running that code, under its own prefix, in the same Redis. The secret is generated once per
run (``bench_engine.SECRET``) and shared by every child and server.

The ``solara.state`` logger is set to WARNING in this script's processes, so neither engine pays
for its per-restore and per-flush log lines there. The ``solara run`` instances keep their defaults:
ours writes its operator log lines (INFO), Solara's stay silent.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import json
import logging
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.markup import escape
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (BENCH, ROOT, ROOT / "tests", ROOT / "tests" / "e2e"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# The sibling bench, found through sys.path. Importing it also puts the code this process measures
# first on sys.path (this checkout's, or with BENCH_CODE_ROOT set by ``--before`` the previous one's)
# and fixes the run's generated secret (BENCH_SECRET, inherited by every child process).
from bench_engine import (  # noqa: E402
    BEFORE,
    CODE_ROOT_ENV,
    SECRET,
    add_row,
    before_checkout,
    code_origin,
    declare,
    load_line,
    new_table,
    open_session,
    paired_ratio,
    ratio,
    redis_server,
    session_key,
)

SCHEMA_TAG = "bench"
TTL = 86400.0
CONNECT_TIMEOUT = 2.0  # the same takeover/flush bound for both engines (a busy 2-core machine)
DRAIN_DEADLINE = 5.0  # Solara's `_drain_state_workers` default; our integration's DRAIN_TIMEOUT too
CHILD_TIMEOUT = 600.0
OURS_APP = ROOT / "tests" / "apps" / "persisted_counter.py"
SOLARA_APP = BENCH / "apps" / "builtin_counter.py"
RESTORE_TIMEOUT_MS = 20_000

#: The restored session: five small values of mixed types, ``key -> (type, default, stored value)``.
RESTORE_VALUES: dict[str, tuple[Any, Any, Any]] = {
    "bench.restore.page": (int, 0, 4),
    "bench.restore.query": (str, "", "red shoes"),
    "bench.restore.tags": (list[str], [], ["sale", "new"]),
    "bench.restore.range": (dict[str, int], {}, {"min": 10, "max": 90}),
    "bench.restore.dark": (bool, False, True),
}
DRAIN_VALUES: dict[str, tuple[Any, Any]] = {"bench.drain.page": (int, 0), "bench.drain.query": (str, "")}

#: Installed before any page script: the wall-clock time of every websocket open.
WS_HOOK = """
window.__bench = {opens: [], visibleAt: null};
(() => {
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => window.__bench.opens.push(performance.timeOrigin + performance.now()));
    }
  };
})();
"""
#: Records the wall-clock time at which every one of the given texts is on the page.
WATCH_TEXTS = """
(texts) => {
  window.__bench.visibleAt = null;
  const observer = new MutationObserver(() => {
    if (texts.every((text) => document.body.textContent.includes(text))) {
      window.__bench.visibleAt = performance.timeOrigin + performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document.body, {childList: true, subtree: true, characterData: true});
}
"""

# -- both engines' set-up -----------------------------------------------------------------------


def quiet_state_logs() -> None:
    logging.getLogger("solara.state").setLevel(logging.WARNING)


def ours_settings(port: int, prefix: str) -> Any:
    from solara_persisted.config import Settings

    return Settings(
        backend="redis",
        url=f"redis://127.0.0.1:{port}/0",
        secret_keys=(SECRET,),
        prefix=prefix,
        schema_tag=SCHEMA_TAG,
        flush_debounce=0.3,  # Solara's default too; the drain stops our writer, so nothing waits on it
        connect_timeout=CONNECT_TIMEOUT,
        ttl=TTL,
        session_http_only=True,
        production=False,
    )


def configure_solara(port: int, prefix: str, debounce: str = "300ms") -> None:
    """Solara's engine reads its settings object at call time; point it at the bench Redis."""
    import solara.server.settings as server_settings

    state = server_settings.state
    state.backend = "redis"
    state.url = f"redis://127.0.0.1:{port}/0"
    state.secret_keys = SECRET
    state.prefix = prefix
    state.schema_tag = SCHEMA_TAG
    state.ttl = "24h"
    state.flush_debounce = debounce
    state.connect_timeout = CONNECT_TIMEOUT


def ours_prefix(prefix: str) -> str:
    """Our sessions' prefix; "ours before" (the previous code, ``--before``) writes under its own."""
    return prefix + ("prev:" if BEFORE else "ours:")


def declare_ours(values: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    from solara_persisted.spec import persisted

    return {key: declare(persisted, key, spec[0], spec[1]) for key, spec in values.items()}


def declare_solara(values: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Solara's own persist API; in a process that imported solara_persisted, our engine persists these too."""
    import solara

    return {key: solara.reactive(spec[1], key=key, persist=True) for key, spec in values.items()}


def server_process() -> None:
    """What a child needs of a Solara server process: reactives scope per kernel once this is loaded."""
    import solara.server.starlette  # noqa: F401


def new_context(kernel_id: str, session_id: str, kernel: Any) -> Any:
    """Build and register a kernel context, as ``initialize_virtual_kernel`` does for a new id."""
    from solara.server import kernel_context

    context = kernel_context.VirtualKernelContext(id=kernel_id, session_id=session_id, kernel=kernel)
    kernel_context.contexts[kernel_id] = context
    return context


def emit(result: Mapping[str, Any]) -> None:
    """The child's answer, then an immediate exit: leftover daemon/pool threads must not delay it."""
    sys.stdout.write(json.dumps({**result, "code": code_origin()}) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_child(console: Console, *args: str, code_root: Path | None = None) -> dict[str, Any]:
    """A child process of this script; ``code_root`` None measures this checkout's code.

    The answer names the ``solara_persisted`` the child imported, checked here: a "before" number
    measured on this checkout's code would be worse than none.
    """
    env = dict(os.environ)
    env.pop(CODE_ROOT_ENV, None)
    if code_root is not None:
        env[CODE_ROOT_ENV] = str(code_root)
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0 or not completed.stdout.strip():
        raise RuntimeError(f"child {args} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    if completed.stderr.strip():
        console.print(escape(completed.stderr.rstrip()), highlight=False)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    expected = (code_root or ROOT).resolve()
    if not Path(result["code"]).is_relative_to(expected):
        raise RuntimeError(
            f"child {args} imported solara_persisted from {result['code']}, not from {expected}"
        )
    return result


# -- 1. restore step on a fresh instance ----------------------------------------------------------


def restore_kernels(side: str, process: int, samples: int) -> list[tuple[str, str]]:
    """``(kernel id, session id)`` of every session one restore child takes over, first one cold."""
    return [(f"r-{side}-{process}-{i}", f"cookie-{side}-{process}-{i}") for i in range(samples)]


def restored_values() -> dict[str, Any]:
    return {key: spec[2] for key, spec in RESTORE_VALUES.items()}


def seed_solara_restore(port: int, prefix: str, kernels: list[tuple[str, str]]) -> None:
    """Write Solara's restore sessions through its own write path (no server involved)."""
    import solara.state as S
    from solara.state.redis import RedisStateBackend

    stored = restored_values()
    configure_solara(port, prefix + "solara:")
    backend = RedisStateBackend(client=redis.Redis(host="127.0.0.1", port=port, socket_timeout=5))
    tag = S.effective_schema_tag()
    for kernel_id, session_id in kernels:
        result = backend.takeover(kernel_id, S.session_hmacs(session_id), tag)
        fields = {
            "reactive:" + key: S.encode(value, kernel_id=kernel_id, field_name="reactive:" + key)
            for key, value in stored.items()
        }
        if not backend.flush(kernel_id, result.generation, fields, TTL, S.session_hmac(session_id), tag):
            raise AssertionError("Solara's seed write was rejected")
    backend.client.close()


def seed_ours_restore(
    port: int, prefix: str, kernels: list[tuple[str, str]], declare_values: Callable[..., Any] = declare_ours
) -> None:
    """Write our restore sessions through our engine's own write path (this process's version of it)."""
    from solara_persisted.engine import Engine

    stored = restored_values()
    declare_values(RESTORE_VALUES)
    engine = Engine(ours_settings(port, ours_prefix(prefix)))
    engine.start()
    for kernel_id, session_id in kernels:
        restored = engine.restore(kernel_id, session_id)
        session = open_session(
            engine, kernel_id, session_id, restored, lambda keys: {key: stored[key] for key in keys}
        )
        for key in stored:
            engine.mark_dirty(session, key)
    if engine.drain(30.0):
        raise AssertionError("our seed write did not complete")
    engine.close()


def seed_child(side: str, port: int, prefix: str, processes: int, samples: int) -> None:
    """Seed our restore sessions with this process's code (``--before``: the previous commit's), or the
    persist=True side's through its untyped specs (a process may not declare a key both ways)."""
    kernels = [k for p in range(processes) for k in restore_kernels(side, p, samples)]
    if side == "persist-true":
        import solara_persisted  # noqa: F401  # adopts the persist=True reactives declared next

        seed_ours_restore(port, prefix, kernels, declare_solara)
    else:
        seed_ours_restore(port, prefix, kernels)
    emit({})


def profiled(call: Callable[..., Any], profiles: list[cProfile.Profile]) -> Callable[..., Any]:
    """``call`` under a profiler of its own: the takeover runs on a pool thread, out of the caller's sight."""

    def wrapper(*args: Any) -> Any:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            return call(*args)
        finally:
            profiler.disable()
            profiles.append(profiler)

    return wrapper


def print_profile(title: str, profiles: list[cProfile.Profile]) -> None:
    print(f"\n== {title} ==", file=sys.stderr)
    stats = pstats.Stats(profiles[0], stream=sys.stderr)
    for profile in profiles[1:]:
        stats.add(profile)
    for order in ("tottime", "cumulative"):
        stats.sort_stats(order).print_stats(20)


def restore_child(side: str, port: int, prefix: str, process: int, samples: int, profile: bool) -> None:
    from solara.server import kernel, kernel_context

    server_process()
    takeovers: list[cProfile.Profile] = []
    expected = [spec[2] for spec in RESTORE_VALUES.values()]
    if (side == "before") != BEFORE:
        raise AssertionError(f"a {side!r} restore child runs the code of {code_origin()}")
    if side in ("ours", "before", "persist-true"):
        from solara_persisted import solara_integration

        declare_values = declare_solara if side == "persist-true" else declare_ours
        reactives = list(declare_values(RESTORE_VALUES).values())
        active = solara_integration.activate(ours_settings(port, ours_prefix(prefix)))
        if profile:
            active.restore = profiled(active.restore, takeovers)  # type: ignore[method-assign]

        def restore(kernel_id: str, session_id: str, kern: Any) -> Any:
            context = new_context(kernel_id, session_id, kern)
            with context:
                return context, [reactive.value for reactive in reactives]

    else:
        import solara.state as S

        configure_solara(port, prefix + "solara:")
        reactives = list(declare_solara(RESTORE_VALUES).values())
        backend = S.get_backend()  # built (and connected: CONFIG GET) before the clock, as at start-up

        def restore(kernel_id: str, session_id: str, kern: Any) -> Any:
            context = new_context(kernel_id, session_id, kern)
            kernel_context._restore_on_connect(context, backend, session_id)
            with context:
                return context, [reactive.value for reactive in reactives]

    quiet_state_logs()
    times = []
    profiler = cProfile.Profile()
    for number, (kernel_id, session_id) in enumerate(restore_kernels(side, process, samples)):
        kern = kernel.Kernel()
        profiling = profile and number > 0  # the warm restores only
        start = time.perf_counter()
        if profiling:
            profiler.enable()
        context, values = restore(kernel_id, session_id, kern)
        if profiling:
            profiler.disable()
        times.append((time.perf_counter() - start) * 1e3)
        status = context.state_persistence.last_restore["status"]
        if values != expected or status != "success":
            raise AssertionError(f"{side}: restore of {kernel_id} gave {status} with {values}")
        context.close(reason="cull")  # off the clock; the process holds as few live kernels as a quiet server
    if profile:
        print_profile("the connecting thread: context creation to the last value read", [profiler])
        print_profile("the takeover pool thread: engine.restore, every restore", takeovers)
    emit({"cold_ms": times[0], "warm_ms": times[1:]})


def bench_restore(
    console: Console,
    port: int,
    prefix: str,
    processes: int,
    samples: int,
    profile: bool,
    before: Path | None,
) -> dict[str, Any]:
    sides = ("solara", "ours", "persist-true", *(("before",) if before is not None else ()))
    kernels = {
        side: [k for p in range(processes) for k in restore_kernels(side, p, samples)] for side in sides
    }
    seed_solara_restore(port, prefix, kernels["solara"])
    seed_ours_restore(port, prefix, kernels["ours"])
    counts = ("--processes", str(processes), "--samples", str(samples))
    run_child(console, "seed", "persist-true", "--port", str(port), "--prefix", prefix, *counts)
    if before is not None:
        run_child(
            console, "seed", "before", "--port", str(port), "--prefix", prefix, *counts, code_root=before
        )
    out: dict[str, Any] = {side: {"cold": [], "warm": [], "warm_by_process": []} for side in sides}
    for process in range(processes):
        # Interleaved: a noisy neighbour hits every side alike; ours and ours before swap places.
        order = sides if process % 2 == 0 else (sides[0], *sides[:0:-1])
        for side in order:
            result = run_child(
                console, "restore", side, "--port", str(port), "--prefix", prefix, "--process", str(process),
                "--samples", str(samples), *(["--profile"] if profile and side == "ours" else []),
                code_root=before if side == "before" else None,
            )  # fmt: skip
            out[side]["cold"].append(result["cold_ms"])
            out[side]["warm"].extend(result["warm_ms"])
            out[side]["warm_by_process"].append(statistics.median(result["warm_ms"]))
    summary: dict[str, Any] = {
        side: {
            "cold": statistics.median(v["cold"]),
            "warm": statistics.median(v["warm"]),
            "cold_samples": v["cold"],
            "warm_by_process": v["warm_by_process"],
            "warm_p90": statistics.quantiles(v["warm"], n=10)[-1],
        }
        for side, v in out.items()
    }
    # persist=True and @persisted under ours ran back to back in each round, as ours and ours before do.
    summary["vs_typed"] = {
        "cold": paired_ratio(out["persist-true"]["cold"], out["ours"]["cold"]),
        "warm": paired_ratio(out["persist-true"]["warm_by_process"], out["ours"]["warm_by_process"]),
    }
    if before is not None:
        # Ours and ours before ran back to back in each round: the median of those pairs' ratios.
        summary["vs_before"] = {
            "cold": paired_ratio(out["ours"]["cold"], out["before"]["cold"]),
            "warm": paired_ratio(out["ours"]["warm_by_process"], out["before"]["warm_by_process"]),
        }
    return summary


# -- 2. shutdown drain ----------------------------------------------------------------------------


def count_written(port: int, keys: list[str], fields: list[str]) -> int:
    """How many of the sessions' hashes hold every one of ``fields`` (engine-neutral check)."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    written = 0
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.hmget(key, fields)
        written += sum(all(value is not None for value in row) for row in pipe.execute())
    client.close()
    return written


def drain_child(side: str, port: int, prefix: str, sessions: int) -> None:
    from solara.server import kernel

    server_process()
    kern = kernel.Kernel()
    token = uuid.uuid4().hex[:8]
    kernel_ids = [f"d-{token}-{i}" for i in range(sessions)]
    if side == "ours":
        from solara_persisted import solara_integration

        reactives = list(declare_ours(DRAIN_VALUES).values())
        active = solara_integration.activate(ours_settings(port, ours_prefix(prefix)))
        active.writer.stop()  # nothing is written before the drain: every session stays dirty
        fields = list(DRAIN_VALUES)
        keys = [
            ours_prefix(prefix) + session_key(kernel_id, f"cookie-{kernel_id}") for kernel_id in kernel_ids
        ]
        quiet_state_logs()
        for i, kernel_id in enumerate(kernel_ids):
            context = new_context(kernel_id, f"cookie-{kernel_id}", kern)
            with context:
                reactives[0].value = i + 1
                reactives[1].value = f"query {i}"
        if active.writer.pending() != sessions:
            raise AssertionError(
                f"ours: {active.writer.pending()} of {sessions} sessions dirty before the drain"
            )
        start = time.perf_counter()
        left = active.drain(DRAIN_DEADLINE)
        elapsed = time.perf_counter() - start
        acked = active.state_block()["flush_ok"]
        if left:
            raise AssertionError(f"ours: {left} values left unwritten")
    else:
        import solara.state as S
        from solara.server import kernel_context
        from solara.server import starlette as solara_starlette

        configure_solara(port, prefix + "solara:", debounce="1h")  # no worker flushes before the drain
        reactives = list(declare_solara(DRAIN_VALUES).values())
        backend = S.get_backend()
        fields = ["reactive:" + key for key in DRAIN_VALUES]
        keys = [prefix + "solara:" + kernel_id for kernel_id in kernel_ids]
        quiet_state_logs()
        for i, kernel_id in enumerate(kernel_ids):
            context = new_context(kernel_id, f"cookie-{kernel_id}", kern)
            kernel_context._restore_on_connect(context, backend, context.session_id)
            if context.state_flush_worker is None:
                raise AssertionError(f"solara: no flush worker for {kernel_id}")
            with context:
                reactives[0].value = i + 1
                reactives[1].value = f"query {i}"
        if S.stats().flush_ok:
            raise AssertionError("solara: a worker flushed before the drain")
        start = time.perf_counter()
        solara_starlette._drain_state_workers(DRAIN_DEADLINE)
        elapsed = time.perf_counter() - start
        acked = S.stats().flush_ok
    written = count_written(port, keys, fields)
    if written < acked:
        raise AssertionError(f"{side}: {acked} flushes acknowledged but only {written} sessions in Redis")
    emit({"seconds": elapsed, "acked": acked, "sessions": sessions})


def bench_drain(
    console: Console, port: int, prefix: str, counts: list[int], solara_cap: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in counts:
        out[str(n)] = {}
        for side in ("solara", "ours"):
            sessions = min(n, solara_cap) if side == "solara" else n
            with console.status(f"shutdown drain, {side}, {sessions:,} sessions"):
                out[str(n)][side] = run_child(
                    console,
                    "drain",
                    side,
                    "--port",
                    str(port),
                    "--prefix",
                    prefix,
                    "--sessions",
                    str(sessions),
                )
    return out


# -- 3. connect-to-visible in headless Chromium -------------------------------------------------------


def resourcez_state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/resourcez", timeout=5) as response:
        return json.load(response).get("state", {})


def wait_settled(url: str, quiet: float = 0.6, timeout: float = 15.0) -> None:
    """Until the instance has acknowledged a flush and no new one arrived for ``quiet`` seconds."""
    from fleet import wait_until

    wait_until(lambda: resourcez_state(url).get("flush_ok", 0) >= 1, "a flush on A", timeout)
    deadline = time.monotonic() + timeout
    last = resourcez_state(url)["flush_ok"]
    while True:
        time.sleep(quiet)
        now = resourcez_state(url)["flush_ok"]
        if now == last:
            return
        if time.monotonic() > deadline:
            raise AssertionError("A kept flushing")
        last = now


def failover_once(
    chromium: Any, workdir: Path, app: Path, env: Mapping[str, str], *, persisted: bool = True
) -> dict[str, float]:
    """One failover. ``persisted`` False is the floor: only the plain counter is clicked, so
    nothing is stored and B re-mounts the page after a miss (the same path, no values to restore).
    With persistence off there is no re-mount to time: Solara's client shows its refresh dialog."""
    from fleet import Fleet, SolaraServer
    from playwright.sync_api import expect

    with Fleet(workdir) as fleet:
        servers = [SolaraServer(app, workdir=workdir / name, env=env, name=name) for name in ("a", "b")]
        fleet.servers.extend(servers)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda server: server.start(), servers))
        a, b = servers
        proxy = fleet.proxy(a)
        browser = chromium.new_context(viewport={"width": 1024, "height": 700})
        try:
            browser.set_default_timeout(15_000)
            browser.add_init_script(WS_HOOK)
            page = browser.new_page()
            page.goto(proxy.url)
            expect(page.get_by_text("Persisted: 0")).to_be_visible()
            clicks = (("Add persisted", 3), ("Add plain", 2)) if persisted else (("Add plain", 2),)
            for name, times in clicks:
                for _ in range(times):
                    page.get_by_role("button", name=name).click()
            shown = "Persisted: 3" if persisted else "Persisted: 0"
            expect(page.get_by_text(shown)).to_be_visible()
            expect(page.get_by_text("Plain: 2")).to_be_visible()
            if persisted:
                wait_settled(a.url)
            page.evaluate(WATCH_TEXTS, [shown, "Plain: 0"])

            switched = time.time() * 1e3
            proxy.target = b.port
            a.kill()
            page.wait_for_function("() => window.__bench.visibleAt !== null", timeout=RESTORE_TIMEOUT_MS)
            bench = page.evaluate("() => window.__bench")
            expect(page.get_by_text(shown)).to_be_visible()  # on screen, not only in the DOM
            expect(page.get_by_text("Plain: 0")).to_be_visible()
            restored = resourcez_state(b.url)
            counted = "restore_success" if persisted else "restore_miss"
            if restored.get(counted) != 1:
                raise AssertionError(f"B did not count one {counted}: {restored}")
        finally:
            browser.close()
    visible = bench["visibleAt"]
    opened = max(t for t in bench["opens"] if t <= visible)
    if opened < switched:
        raise AssertionError("no websocket opened between the switch and the restored page")
    return {"switch_ms": visible - switched, "ws_ms": visible - opened}


def bench_failover(console: Console, port: int, runs: int) -> dict[str, Any]:
    from fleet import CHROMIUM, CHROMIUM_ARGS, missing_cdn_assets
    from playwright.sync_api import sync_playwright

    problem = missing_cdn_assets()
    if problem:
        raise RuntimeError(
            f"{problem}: Solara's page needs its CDN assets cached (bash .ci/test installs them)"
        )
    samples: dict[str, list[dict[str, float]]] = {"ours": [], "solara": [], "floor": []}
    apps = {"ours": OURS_APP, "solara": SOLARA_APP}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS), timeout=30_000
        )
        try:
            for run in range(runs):
                for side in ("solara", "ours"):
                    env = {
                        "SOLARA_STATE_BACKEND": "redis",
                        "SOLARA_STATE_URL": f"redis://127.0.0.1:{port}/0",
                        "SOLARA_STATE_SECRET_KEYS": SECRET,
                        "SOLARA_STATE_PREFIX": f"bench-e2e-{uuid.uuid4().hex[:6]}:",
                        "SOLARA_STATE_FLUSH_DEBOUNCE": "100ms",
                        "SOLARA_SESSION_HTTP_ONLY": "true",
                    }
                    with console.status(f"failover in chromium, {side}, run {run + 1}/{runs}"):
                        samples[side].append(
                            failover_once(chromium, Path(tmp) / f"{side}-{run}", apps[side], env)
                        )
                with console.status(f"the floor: the same failover with nothing stored, run {run + 1}/{runs}"):
                    samples["floor"].append(
                        failover_once(chromium, Path(tmp) / f"floor-{run}", OURS_APP, env, persisted=False)
                    )
        finally:
            chromium.close()
    return {
        side: {
            measure: statistics.median(sample[measure] for sample in values)
            for measure in ("switch_ms", "ws_ms")
        }
        | {"runs": len(values), "samples": values}
        for side, values in samples.items()
    }


# -- report ---------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> Table:
    table = new_table(
        f"solara-persisted vs Solara {results['solara_version']}'s built-in engine in a server, "
        f"redis-server {results['redis_version']} on loopback"
        + (f"; ours before: {results['before']}" if results.get("before") else "")
    )

    def row(measure: str, ours: float, theirs: float, fmt: str, goals: Any = (), **kw: Any) -> None:
        add_row(table, measure, ours, theirs, fmt, goals, **kw)

    restore = results["restore"]
    for label, key in (("cold: first in a new process", "cold"), ("warm: median", "warm")):
        ours, theirs = restore["ours"][key], restore["solara"][key]
        before = restore["before"][key] if "before" in restore else None
        vs_before = restore["vs_before"][key] if "vs_before" in restore else None
        q = ratio(ours, theirs)
        goals: tuple[tuple[str, bool | None], ...] = (("≤ 0.5×", q <= 0.5),)
        if key == "warm":
            goals += (("≤ 0.7× (issue)", q <= 0.7),)
        goals += (("≤ 1.1× before", None if vs_before is None else vs_before <= 1.1),)
        row(
            f"restore step, {len(RESTORE_VALUES)} keys, {label} (ms)",
            ours,
            theirs,
            ".3f",
            goals,
            before=before,
            vs_before=vs_before,
        )
    for label, key in (("cold: first in a new process", "cold"), ("warm: median", "warm")):
        builtin, theirs, vs_typed = restore["persist-true"][key], restore["solara"][key], restore["vs_typed"][key]
        row(
            f"restore step, {len(RESTORE_VALUES)} keys declared persist=True, under ours, {label} (ms)",
            builtin,
            theirs,
            ".3f",
            ((f"≤ 1.1× @persisted (issue 9): {vs_typed:.2f}×", vs_typed <= 1.1),),
        )
    table.add_section()
    for count, sides in results["drain"].items():
        ours, theirs = sides["ours"], sides["solara"]
        notes = []
        if theirs["acked"] < theirs["sessions"]:
            notes.append(f"{theirs['acked']:,} of {theirs['sessions']:,} written by the deadline")
        if theirs["sessions"] < int(count):
            notes.append(f"capped at {theirs['sessions']:,} sessions")
        note = f" ({'; '.join(notes)})" if notes else ""
        big = int(count) >= 10_000
        row(
            f"shutdown drain, {int(count):,} sessions × 2 values (s)",
            ours["seconds"],
            theirs["seconds"],
            ".3f",
            (("ours ≤ 2 s", ours["seconds"] <= 2.0 and ours["acked"] == ours["sessions"]),) if big else (),
            note=note,
        )
        row(
            f"shutdown drain, {int(count):,} sessions: written sessions/s",
            ours["acked"] / ours["seconds"],
            theirs["acked"] / theirs["seconds"],
            ",.0f",
        )
    if "failover" in results:
        table.add_section()
        failover = results["failover"]
        for label, key in (
            ("proxy switch → restored value visible", "switch_ms"),
            ("B's websocket open → restored value visible", "ws_ms"),
        ):
            ours, theirs = failover["ours"][key], failover["solara"][key]
            row(
                f"failover in Chromium, {label}, median of {failover['ours']['runs']} (ms)",
                ours,
                theirs,
                ".0f",
                (("≤ 1× (no slower)", ratio(ours, theirs) <= 1.0),),
            )
        floor = failover["floor"]["ws_ms"]
        ours, theirs = failover["ours"]["ws_ms"], failover["solara"]["ws_ms"]
        row(
            f"failover's websocket open → restored value visible, over the floor ({floor:.0f} ms: the same "
            "failover with nothing stored, B's websocket open → the page re-mounted after a miss) (×)",
            ratio(ours, floor),
            ratio(theirs, floor),
            ".2f",
            (("≤ 1.1× the floor (issue 13)", ratio(ours, floor) <= 1.1),),
        )
    return table


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    import solara

    quiet_state_logs()
    with redis_server() as port:
        admin = redis.Redis(host="127.0.0.1", port=port)
        results: dict[str, Any] = {
            "solara_version": solara.__version__,
            "redis_version": admin.info("server")["redis_version"],
            "before": str(args.before) if args.before else None,
            "load": [os.getloadavg()[0]],
        }
        admin.close()
        prefix = f"bs{uuid.uuid4().hex[:4]}:"
        with console.status("restore step, both engines, child processes"):
            results["restore"] = bench_restore(
                console, port, prefix, args.processes, args.samples, args.profile, args.before
            )
        results["drain"] = bench_drain(console, port, prefix, args.drain, args.solara_drain_cap)
        if args.failover_runs:
            results["failover"] = bench_failover(console, port, args.failover_runs)
    results["load"].append(os.getloadavg()[0])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--processes", type=int, default=5, help="restore child processes per side (default 5)"
    )
    parser.add_argument("--samples", type=int, default=40, help="restores per child, first cold (default 40)")
    parser.add_argument("--drain", type=int, nargs="+", default=[1000, 10_000], help="drained session counts")
    parser.add_argument(
        "--solara-drain-cap",
        type=int,
        default=10_000,
        help="most sessions Solara's drain is given (a thread each)",
    )
    parser.add_argument(
        "--failover-runs", type=int, default=5, help="Chromium failovers per side (default 5)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile our warm restores; the top functions go to stderr"
    )
    parser.add_argument(
        "--before",
        type=before_checkout,
        metavar="PATH",
        help="a checkout of the previous commit (git worktree add /tmp/before <commit>): the restore step "
        "also runs its solara_persisted, in child processes, as 'ours before'",
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this file")
    parser.add_argument("--child", nargs=2, metavar=("MEASURE", "SIDE"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--process", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_state_logs()
    if args.child:
        measure, side = args.child
        if measure == "restore":
            restore_child(side, args.port, args.prefix, args.process, args.samples, args.profile)
        elif measure == "seed":
            seed_child(side, args.port, args.prefix, args.processes, args.samples)
        else:
            drain_child(side, args.port, args.prefix, args.sessions)
        return
    if BEFORE:
        parser.error(f"{CODE_ROOT_ENV} is set: measure the previous code with --before PATH instead")
    console = Console() if sys.stdout.isatty() else Console(width=170)
    results = run(args, console)
    console.print(report(results))
    console.print(load_line(results["load"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
