"""Performance at fleet scale: no persistence, Solara's built-in engine and ours, in real servers.

Run by hand (a smoke-sized version is in the suite, ``tests/test_bench_fleet.py``)::

    .venv/bin/python bench/bench_fleet.py --quick                        # 100 sessions; < 3 min
    .venv/bin/python bench/bench_fleet.py --sessions 100,1000 --json /tmp/fleet.json
    .venv/bin/python bench/bench_fleet.py --sessions 5000 --redis normal --connect-timeout 120
    .venv/bin/python bench/bench_fleet.py --sessions 1000 --burst --seconds 5   # changes as fast as acks come
    .venv/bin/python bench/bench_fleet.py --sessions 10 --seconds 5 --warmup 2   # a smoke run

It needs the project's virtualenv and Debian's ``redis-server``. It starts one redis-server on a
free loopback port (no RDB, no AOF; ``bench_engine.redis_server``), and for every run a fresh
``solara run --production`` server (``launch_solara``, its own process group) of one of three twin
apps holding the same four small values per session (three strings and an int, set by one event
as ``chaos_app.py`` does):

- ``off``: ``apps/fleet_off.py``, plain reactives, no ``SOLARA_STATE_*`` setting at all;
- ``solara``: ``apps/fleet_solara.py``, ``solara.reactive(..., persist=True)``, never importing
  solara_persisted, so Solara's own engine persists it (the run fails if the server log says
  "solara-persisted active", or if Solara's ``/resourcez`` says its engine is off);
- ``ours``: ``apps/fleet_ours.py``, ``@persisted(key=...)`` (the run fails unless the log says
  "solara-persisted active").

``solara`` and ``ours`` get the same environment: ``SOLARA_STATE_BACKEND=redis``, the run's
generated secret, a prefix of their own, schema tag ``bench``, TTL 24 h, flush debounce 300 ms and
connect timeout 300 ms (both engines' defaults, written out), HTTP-only session cookies. Redis is
reached in one of three ways (``--redis``):

- ``normal``: the server talks to redis-server directly;
- ``slow``: through a ``LoopbackProxy`` link in a child process of its own (not this process: the
  load generator's event loop would delay it) that holds every chunk ``--slow-ms``/2 each way, as
  ``chaos_fleet.redis_latency`` does: 20 ms added to every round trip by default;
- ``down``: through the same link, cut (``refuse()``: every connection reset) once the server is
  ready and before the first session connects, so ours opens its breaker and Solara's its own.

``off`` never talks to Redis, so it runs once per session count (recorded with ``redis: "normal"``)
and is the reference column of that count's ``slow`` and ``down`` tables too.

The load is protocol-level clients, no browser (``FleetUser``, a ``chaos_client.User`` that loads
the page as a browser's first visit does: a ``solara.control`` comm and ``run``, no ``app-status``
probe), all on one asyncio loop in this process. A run:

1. FLUSHALL, start the server (and the link), wait for ``/readyz``; cut the link for ``down``.
2. One *warm* session connects, makes one change and stays connected, idle: every lazy import
   and first-use cost of the app and the engine is paid before the idle figures are taken.
   The server log and ``/resourcez`` are checked here (which engine is active).
3. Idle figures, once Redis has gone quiet (as in 6.): the server's RSS and Redis's ``used_memory``.
4. Ramp: ``--sessions`` users connect ``--batch`` at a time (a batch is done when every page in
   it has rendered, i.e. restored); a user that cannot connect within ``--connect-timeout`` is
   retried twice as a fresh page load, then counted as not connected.
5. Every connected user then loops: think ``--interval`` × U(0.5, 1.5) (default 2 s: one change
   every ~2 s per session, jittered; with ``--burst`` no think time at all, the next change as soon
   as the ack is back), then change 1-3 of the strings and the seq in one event and wait for its
   ack. A change not acknowledged within ``--ack-timeout`` is a timeout; that page is dropped and
   loaded again as a new one.
6. After ``--warmup`` seconds (default 5) the measured window of ``--seconds`` (default 20)
   starts; at its end the users stop (after the change in flight), then the bench waits until
   Redis has gone quiet (no commands but its own for 1 s, at most 20 s) and reads Redis's memory
   and keys. Then the users' sockets are dropped and the server (and link) stopped.

``--pin`` puts the server on the last CPU and everything else (this process's clients,
redis-server, the links) on the others, so the load generator's own CPU stays out of the server's
latency tail; without it the clients and the server share every core.

``--quick`` is 100 sessions only, a 2 s warm-up and a 5 s window: seven runs (off; Solara and ours
with Redis normal, slow, down). Each run prints one line as it ends (sessions, ramp time, changes,
timeouts, the engine's ``/resourcez`` state block at the start and end: status, breaker, flushes).

What each measure includes (N is the number of users connected at the end of the ramp; the warm
session is in the idle figures and not in N):

- ``threads``: the most ``Threads:`` (``/proc/<pid>/status``) summed over the server's process
  group seen during the window (sampled once a second). Solara's server itself runs one thread
  per websocket connection, so every configuration has about N + a constant; Solara's engine adds
  one flush thread per kernel, ours a constant number. The table's "threads beyond off" row is
  that difference.
- ``rss_per_session_bytes``: (``VmRSS`` summed over the process group at the end of the window −
  the same with only the warm session connected) / N. Most of it is Solara's kernel, widgets and
  connection thread, the same in every configuration: the table's "beyond off" row takes off's
  figure away, which leaves what the engine itself holds per session.
- ``cpu_ms_per_1000_changes``: ``utime + stime`` (``/proc/<pid>/stat``) summed over the process
  group, from the start to the end of the window, / the changes acknowledged × 1000. The load
  generator and redis-server run beside it on the same cores and are not in it; redis-server's
  own CPU (``INFO cpu``) over the window is a table row of its own. The table's "server CPU in
  the window" is the same utime + stime / the window's length, in % of one core: at a low change
  rate the server's idle work dominates the per-change figure.
- ``event_p50_ms`` / ``event_p99_ms``: at the client, from sending the change (the ``cmd``
  widget's ``update``) to receiving the ``state`` widget's update that shows its seq
  (``chaos_client``'s ack): the server's event handling, render and, where an engine makes the
  event wait, that wait, plus the queueing of a busy 2-core machine (the client's own loop
  included). Nearest-rank percentiles of every change sent in the window. With ``--rounds``, the
  table also pools every round's events into one p99, and the goal is judged on it: a round's
  p99 moves with whether a pause of the server's garbage collector (~150 ms every few seconds at
  100 sessions, in every configuration) lands in its window.
- ``changes``: the changes sent in the window and acknowledged.
- ``redis_commands_per_s``: ``total_commands_processed`` (``INFO``) at the window's end − at its
  start, less the bench's own three (``INFO stats``, ``cpu``, ``memory``), / the window's length:
  everything the server's engine sent (flushes, scripts, pings, probes).
- ``redis_bytes_per_session``: (``used_memory`` once Redis went quiet after the window − before the
  ramp, both with the warm session written) / N: the sessions' keys and whatever else the engine
  keeps in Redis, including the buffers of the connections it opened meanwhile (~20 KB each).
  With Redis down it is the noise of that figure (a few hundred bytes either way over N).
- ``null`` for ``off``'s Redis figures; a figure that could not be measured (no change
  acknowledged) is ``null`` too.
- table only: the idle server's RSS, changes/s, timeouts / failed page loads, redis-server CPU per
  1,000 changes, and the keys under the run's prefix after the settle (one per session written,
  plus what an engine keeps beside them).

Goals (issue 13): ours' threads O(1) in sessions (beyond Solara's own per-connection thread);
RSS per session ≤ 0.5× Solara's, judged on what each engine adds beyond off (the kernel itself is
most of a session's memory in every configuration); interaction p99 ≤ 1.05× that of no persistence, with Redis
normal, slow and down. Each table is followed by these verdicts.

Every process the bench starts (redis-server, servers, links) is stopped when it ends, on Ctrl-C,
SIGTERM and an exception too; all traffic is on 127.0.0.1; every wait is bounded. ``--keep-logs DIR``
keeps the servers' logs. Opening many websockets at once overloads a small machine: at 1,000
sessions and beyond raise ``--connect-timeout`` and ``--ack-timeout`` rather than ``--batch``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.markup import escape
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (BENCH, ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_engine import SECRET, load_line, redis_server  # noqa: E402
from chaos_client import Broken, User, _describe, percentile, ws_url  # noqa: E402
from support import free_port, server_env  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from solara_persisted.dev.fleet import answers_ready, launch_solara  # noqa: E402

CONFIGS = ("off", "solara", "ours")
REDIS_MODES = ("normal", "slow", "down")
APPS = {config: BENCH / "apps" / f"fleet_{config}.py" for config in CONFIGS}
ACTIVE_LINE = "solara-persisted active"
PROXY_FILE = ROOT / "solara_persisted" / "dev" / "proxy.py"
READY_TIMEOUT = 90.0  # a `solara run` start on a busy 2-core machine
STOP_GRACE = 2.0  # SIGTERM, then SIGKILL: the measures are taken, a drain would only cost time
LINK_TIMEOUT = 15.0  # the link child's start and each of its answers
SETTLE_QUIET = 1.0  # Redis quiet this long after the window: the last flush is in
SETTLE_TIMEOUT = 20.0
HTTP_TIMEOUT = 5.0
CONNECT_ATTEMPTS = 3
#: The link child: solara_persisted's LoopbackProxy loaded by path (the package import costs ~2 s),
#: commanded by lines on stdin (``delay SECONDS``, ``cut``, ``accept``), each answered on stdout.
LINK_SCRIPT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("loopback_proxy", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
proxy = module.LoopbackProxy(int(sys.argv[2])).start()
print(json.dumps({"port": proxy.port}), flush=True)
for line in sys.stdin:
    command, *rest = line.split()
    if command == "delay":
        proxy.delay = float(rest[0])
    elif command == "cut":
        proxy.refuse()
    elif command == "accept":
        proxy.accept()
    print(json.dumps({"done": command}), flush=True)
proxy.close()
"""


# -- processes ---------------------------------------------------------------------------------


def _signal_group(process: subprocess.Popen[Any], sig: signal.Signals) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)


def stop_process(process: subprocess.Popen[Any], grace: float = STOP_GRACE) -> None:
    """SIGTERM the process group, SIGKILL what outlives ``grace``; reaped either way (bounded)."""
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5.0)


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    """One line of the child's stdout within ``timeout`` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError(f"no answer from child {process.pid} within {timeout:.0f} s")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"child {process.pid} ended (exit {process.poll()})")
    return line


@contextlib.contextmanager
def redis_link(target: int) -> Iterator[Link]:
    """A LoopbackProxy to redis-server in a child process; stopped on exit."""
    process = subprocess.Popen(
        [sys.executable, "-c", LINK_SCRIPT, str(PROXY_FILE), str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        port = json.loads(_readline(process, LINK_TIMEOUT))["port"]
        yield Link(process, port)
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        stop_process(process)


@dataclass
class Link:
    process: subprocess.Popen[str]
    port: int

    def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        _readline(self.process, LINK_TIMEOUT)


@dataclass
class Server:
    """One ``solara run --production`` of an app, in its own process group."""

    app: Path
    env: dict[str, str]
    workdir: Path
    cpus: set[int] | None = None  # --pin: the CPUs the server runs on (its children inherit them)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "solara.log"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with pinned(self.cpus):
            self.process = launch_solara(
                self.app, self.port, workdir=self.workdir, env=self.env, log_path=self.log_path, production=True
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not answers_ready(self.url):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app.name} exited before it was ready:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.app.name} not ready within {READY_TIMEOUT:.0f} s:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def resourcez_state(self, timeout: float = HTTP_TIMEOUT) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/resourcez", timeout=timeout) as response:
            return json.load(response).get("state") or {}

    def state_at_end(self, sessions: int) -> dict[str, Any]:
        """The engine's counters after the window; a server still busy with thousands of sessions
        answers late (Solara's own /resourcez walks every kernel), and a run is not lost over it."""
        try:
            return self.resourcez_state(timeout=max(HTTP_TIMEOUT, sessions / 100))
        except OSError as error:
            return {"status": f"/resourcez unanswered ({error})"}


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    """This thread on ``cpus`` for the duration (a process it starts meanwhile inherits them)."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# -- /proc -------------------------------------------------------------------------------------

CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def group_pids(pgid: int) -> list[int]:
    """Every live process in the process group (the server and any child it started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:
            pids.append(int(entry))
    return pids


@dataclass
class ProcSample:
    rss_bytes: int = 0
    threads: int = 0
    cpu_s: float = 0.0


def sample_group(pgid: int) -> ProcSample:
    """VmRSS and Threads (``/proc/<pid>/status``), utime + stime (``/proc/<pid>/stat``), summed."""
    sample = ProcSample()
    for pid in group_pids(pgid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sample.rss_bytes += int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                sample.threads += int(line.split()[1])
        fields = stat[stat.rindex(")") + 2 :].split()
        sample.cpu_s += (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    return sample


# -- the load generator ------------------------------------------------------------------------


class FleetUser(User):
    """A ``chaos_client.User`` loading the page as a browser's first visit does, then changing values.

    The first load of a page sends no ``app-status`` probe (that is the browser's reconnect path):
    it opens a ``solara.control`` comm and sends ``run``; the page is there (restored, where an
    engine restores) when ``finished`` came and the ``cmd`` and ``state`` widgets were seen. After
    any failure the user loads the page again as a new one (new kernel id, same cookie).
    """

    def __init__(self, uid: int, url: str, rng: random.Random, history: list[Any], **options: Any) -> None:
        super().__init__(uid, url, rng, history, max_attempts=CONNECT_ATTEMPTS, **options)
        self.opened = False

    def _reload(self) -> None:
        self.kernel_id, self.page_id = str(uuid.uuid4()), uuid.uuid4().hex

    async def open(self) -> bool:
        """Load the page (bounded attempts); True once it rendered."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._connect(attempt)
                self.opened = True
                return True
            except Exception as exc:  # a failed load is history, then a fresh one
                self._record("error", detail=_describe(exc))
                await self._close()
                self._reload()
                await asyncio.sleep(self.rng.uniform(*self.backoff))
        return False

    async def _connect(self, attempt: int) -> None:
        start = time.monotonic()
        deadline = start + self.connect_timeout
        self._reset()
        self._ws = await asyncio.wait_for(
            connect(
                ws_url(self.url, self.kernel_id, self.page_id),
                additional_headers={"Cookie": f"solara-session-id={self.cookie}"},
                open_timeout=self.connect_timeout,
                close_timeout=2.0,
                ping_interval=None,
                compression=None,
                proxy=None,
                max_size=None,
            ),
            self.connect_timeout,
        )
        self._record("connect", attempt=attempt, kernel=self.kernel_id)
        self._control = uuid.uuid4().hex
        await self._send("comm_open", {"comm_id": self._control, "target_name": "solara.control", "data": {}})
        run = {"method": "run", "args": {"path": "", "appName": "__default__"}}
        await self._control_call(run, "finished", deadline)
        if not await self._read_until(lambda: bool(self.state) and "cmd" in self._by_description, deadline):
            raise Broken("no cmd/state widget on the page")
        self._record("restore", values=self._values(), seq=self.state.get("seq"), wait_ms=(time.monotonic() - start) * 1000)

    async def drive(self, stop_at: float) -> None:
        """Change values until ``stop_at``; a broken page is loaded again (bounded attempts)."""
        self.stop_at = stop_at
        while time.monotonic() < self.stop_at:
            try:
                if self._ws is None and not await self.open():
                    return
                await self._work()
            except Exception as exc:  # a timeout or a lost connection: recorded, then a new page
                self._record("disconnect", detail=_describe(exc))
                await self._close()
                self._reload()

    def abort(self) -> None:
        """Drop the connection at once (the server is stopped next; no close handshake needed)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.transport.abort()


# -- one run -----------------------------------------------------------------------------------


@dataclass
class RunSpec:
    config: str
    sessions: int
    redis: str


def server_environment(config: str, redis_url: str, prefix: str) -> dict[str, str]:
    if config == "off":
        return server_env()
    return server_env(
        {
            "SOLARA_STATE_BACKEND": "redis",
            "SOLARA_STATE_URL": redis_url,
            "SOLARA_STATE_SECRET_KEYS": SECRET,
            "SOLARA_STATE_PREFIX": prefix,
            "SOLARA_STATE_SCHEMA_TAG": "bench",
            "SOLARA_STATE_TTL": "24h",
            "SOLARA_STATE_FLUSH_DEBOUNCE": "300ms",
            "SOLARA_STATE_CONNECT_TIMEOUT": "0.3",
            "SOLARA_SESSION_HTTP_ONLY": "true",
        }
    )


def check_engine(spec: RunSpec, server: Server) -> dict[str, Any]:
    """The engine the run measures is the one active: the log line, and ``/resourcez``'s state."""
    active = ACTIVE_LINE in server.log()
    if active != (spec.config == "ours"):
        raise RuntimeError(
            f"{spec.config}: the server log {'has' if active else 'lacks'} {ACTIVE_LINE!r}:\n{server.log()[-3000:]}"
        )
    state = server.resourcez_state()
    if (state.get("status") == "off") != (spec.config == "off"):
        raise RuntimeError(f"{spec.config}: /resourcez state status is {state.get('status')!r}")
    return state


#: The commands one ``redis_info`` call sends: taken off every count of Redis's commands.
OWN_COMMANDS = 3


def redis_info(admin: redis.Redis) -> dict[str, Any]:
    """``INFO stats``, ``cpu`` and ``memory``, the command counter first (it does not count the call
    reading it): three small replies, where one ``INFO all`` leaves tens of KB of reply buffer in
    ``used_memory``."""
    info: dict[str, Any] = {}
    for section in ("stats", "cpu", "memory"):
        info.update(admin.info(section))
    return info


async def settle(admin: redis.Redis) -> tuple[dict[str, Any], bool]:
    """Wait until Redis ran nothing but our own INFO for SETTLE_QUIET s (bounded); its last INFO."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    info = redis_info(admin)
    quiet_since = time.monotonic()
    while True:
        await asyncio.sleep(0.2)
        now = redis_info(admin)
        if now["total_commands_processed"] - info["total_commands_processed"] > OWN_COMMANDS:
            quiet_since = time.monotonic()
        info = now
        if time.monotonic() - quiet_since >= SETTLE_QUIET:
            return info, True
        if time.monotonic() > deadline:
            return info, False


def count_keys(admin: redis.Redis, prefix: str) -> int:
    return sum(1 for _ in admin.scan_iter(match=prefix + "*", count=1000))


async def measure(spec: RunSpec, server: Server, admin: redis.Redis, args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    assert server.process is not None
    pgid = server.process.pid
    history: list[Any] = []
    think = (0.0, 0.0) if args.burst else (0.5 * args.interval, 1.5 * args.interval)
    options = {"think": think, "ack_timeout": args.ack_timeout, "connect_timeout": args.connect_timeout}
    seed = f"{args.seed}:{spec.config}:{spec.sessions}:{spec.redis}"
    warm = FleetUser(-1, server.url, random.Random(f"{seed}:warm"), history, **options)
    users = [FleetUser(uid, server.url, random.Random(f"{seed}:{uid}"), history, **options) for uid in range(spec.sessions)]
    tasks: list[asyncio.Task[None]] = []
    try:
        if not await warm.open():
            raise RuntimeError(f"{spec.config}: the warm session did not load: {history[-1:]}")
        await warm._command()
        idle_info, _ = await settle(admin)  # its write is in (with Redis up)
        state_at_start = await asyncio.to_thread(check_engine, spec, server)
        idle = sample_group(pgid)

        ramp_start = time.monotonic()
        for first in range(0, len(users), args.batch):
            await asyncio.gather(*(user.open() for user in users[first : first + args.batch]))
        ramp_s = time.monotonic() - ramp_start
        connected = [user for user in users if user.opened]
        n = len(connected)
        if not n:
            raise RuntimeError(f"{spec.config}: no session connected: {history[-3:]}")

        drive_start = time.monotonic()
        t0 = drive_start + args.warmup
        stop_at = t0 + args.seconds
        tasks = [asyncio.create_task(user.drive(stop_at)) for user in connected]
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        t0 = time.monotonic()
        start_info, start_proc = redis_info(admin), sample_group(pgid)
        threads_max = start_proc.threads
        while (left := stop_at - time.monotonic()) > 0:
            await asyncio.sleep(min(1.0, left))
            threads_max = max(threads_max, sample_group(pgid).threads)
        t1 = time.monotonic()
        end_info, end_proc = redis_info(admin), sample_group(pgid)
        threads_max = max(threads_max, end_proc.threads)
        _, pending = await asyncio.wait(tasks, timeout=args.ack_timeout + 10.0)
        for task in pending:
            task.cancel()
        settled_info, settled = await settle(admin)
        keys = count_keys(admin, prefix) if spec.config != "off" else 0
        state_at_end = await asyncio.to_thread(server.state_at_end, n)
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        for user in [warm, *users]:
            user.abort()

    acks = [r for r in history if r["kind"] == "ack" and t0 <= r["t"] - r["latency_ms"] / 1000 < t1]
    latencies = [r["latency_ms"] for r in acks]
    in_window = [r for r in history if t0 <= r["t"] <= t1 + args.ack_timeout]
    changes = len(acks)
    window = t1 - t0
    redis_used = spec.config != "off"
    commands = end_info["total_commands_processed"] - start_info["total_commands_processed"] - OWN_COMMANDS
    redis_cpu = (end_info["used_cpu_sys"] + end_info["used_cpu_user"]) - (
        start_info["used_cpu_sys"] + start_info["used_cpu_user"]
    )
    return {
        "config": spec.config,
        "sessions": n,
        "redis": spec.redis,
        "threads": threads_max,
        "rss_per_session_bytes": (end_proc.rss_bytes - idle.rss_bytes) / n,
        "cpu_ms_per_1000_changes": (end_proc.cpu_s - start_proc.cpu_s) * 1e6 / changes if changes else None,
        "event_p50_ms": percentile(latencies, 50) if latencies else None,
        "event_p99_ms": percentile(latencies, 99) if latencies else None,
        "redis_bytes_per_session": (settled_info["used_memory"] - idle_info["used_memory"]) / n if redis_used else None,
        "redis_commands_per_s": commands / window if redis_used else None,
        "changes": changes,
        # the table's extras (not in the JSON's runs)
        "extra": {
            "asked": spec.sessions,
            "idle_rss_bytes": idle.rss_bytes,
            "idle_threads": idle.threads,
            "window_s": window,
            "latencies_ms": latencies,  # pooled over rounds by ``merged``
            "ramp_s": ramp_s,
            "changes_per_s": changes / window,
            "cpu_percent": (end_proc.cpu_s - start_proc.cpu_s) / window * 100,
            "timeouts": sum(1 for r in in_window if r["kind"] == "timeout"),
            "disconnects": sum(1 for r in in_window if r["kind"] in ("disconnect", "error")),
            "connect_errors": sum(1 for r in history if r["kind"] == "error"),
            "redis_cpu_ms_per_1000_changes": redis_cpu * 1e6 / changes if changes and redis_used else None,
            "redis_keys": keys if redis_used else None,
            "redis_clients": settled_info.get("connected_clients"),
            "settled": settled,
            "state_start": _state_summary(state_at_start),
            "state_end": _state_summary(state_at_end),
        },
    }


def _state_summary(state: dict[str, Any]) -> str:
    parts = [f"{state.get('status')}", f"breaker {state.get('circuit_breaker')}"]
    for name in ("flush_ok", "flush_error", "restore_success", "restore_miss", "restore_skipped"):
        if name in state:
            parts.append(f"{name}={state[name]}")
    return ", ".join(parts)


def run_one(spec: RunSpec, redis_port: int, args: argparse.Namespace, logs: Path, console: Console) -> dict[str, Any]:
    """One configuration on a fresh server: start, measure, stop everything it started."""
    admin = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=10, socket_connect_timeout=5)
    prefix = f"bf{uuid.uuid4().hex[:6]}:{spec.config}:"
    name = f"{spec.config}-{spec.sessions}-{spec.redis}"
    began = time.monotonic()
    try:
        admin.flushall()
        with contextlib.ExitStack() as stack:
            link = stack.enter_context(redis_link(redis_port)) if spec.redis != "normal" else None
            url = f"redis://127.0.0.1:{link.port if link else redis_port}/0"
            server = Server(APPS[spec.config], server_environment(spec.config, url, prefix), logs / name, args.server_cpus)
            stack.callback(server.stop)
            with console.status(f"{name}: starting the server"):
                server.start()
            if link is not None:
                link.command(f"delay {args.slow_ms / 2000}" if spec.redis == "slow" else "cut")
            with console.status(f"{name}: {spec.sessions} sessions, warm-up {args.warmup:g} s, window {args.seconds:g} s"):
                result = asyncio.run(measure(spec, server, admin, args, prefix))
    finally:
        admin.close()
    extra = result["extra"]
    console.print(
        f"  {escape(name)}: {result['sessions']}/{extra['asked']} sessions (ramp {extra['ramp_s']:.1f} s), "
        f"{result['changes']} changes in {extra['window_s']:.1f} s, timeouts {extra['timeouts']}, "
        f"engine at start: {escape(extra['state_start'])}; at end: {escape(extra['state_end'])}"
        + ("" if extra["settled"] else "; Redis did not go quiet")
        + f"; {time.monotonic() - began:.0f} s",
        highlight=False,
    )
    return result


# -- report ------------------------------------------------------------------------------------

ROWS: tuple[tuple[str, str, str, float], ...] = (
    # label, key (a run's or its "extra"'s), format, scale
    ("sessions connected", "sessions", ",.0f", 1),
    ("threads (max in the window)", "threads", ",.0f", 1),
    ("threads beyond off", "threads_beyond_off", ",.0f", 1),
    ("server RSS, idle (MB)", "idle_rss_bytes", ",.1f", 1e-6),
    ("server RSS per session (KB)", "rss_per_session_bytes", ",.1f", 1e-3),
    ("server RSS per session beyond off (KB)", "rss_beyond_off", ",.1f", 1e-3),
    ("server CPU per 1,000 changes (ms)", "cpu_ms_per_1000_changes", ",.0f", 1),
    ("server CPU in the window (% of one core)", "cpu_percent", ",.0f", 1),
    ("event → ack p50 (ms)", "event_p50_ms", ",.1f", 1),
    ("event → ack p99 (ms)", "event_p99_ms", ",.1f", 1),
    ("event → ack p99, every round's events pooled (ms)", "event_p99_pooled_ms", ",.1f", 1),
    ("changes acknowledged in the window", "changes", ",.0f", 1),
    ("changes/s", "changes_per_s", ",.1f", 1),
    ("timeouts / failed loads", "failures", "", 1),
    ("Redis commands/s", "redis_commands_per_s", ",.1f", 1),
    ("Redis bytes per session", "redis_bytes_per_session", ",.0f", 1),
    ("redis-server CPU per 1,000 changes (ms)", "redis_cpu_ms_per_1000_changes", ",.0f", 1),
    ("Redis keys of the run's prefix", "redis_keys", ",.0f", 1),
)


BEYOND_OFF = ("threads_beyond_off", "rss_beyond_off")
#: RSS per session beyond off below this is noise (bytes).
RSS_NOISE = 1000


def value_of(run: dict[str, Any] | None, key: str, off: dict[str, Any] | None) -> Any:
    if run is None:
        return None
    if key == "threads_beyond_off":
        return None if off is None else run["threads"] - off["threads"]
    if key == "rss_beyond_off":
        return None if off is None else run["rss_per_session_bytes"] - off["rss_per_session_bytes"]
    if key == "failures":
        return f"{run['extra']['timeouts']} / {run['extra']['connect_errors']}"
    return run[key] if key in run else run["extra"].get(key)


def cell(value: Any, fmt: str, scale: float) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return format(value * scale, fmt)


def quotient(a: Any, b: Any) -> str:
    """a / b of two measures; blank where it means nothing (a missing figure, b ≤ 0, a < 0)."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b <= 0 or a < 0:
        return ""
    return f"{a / b:.2f}×"


def verdict(ok: bool | None) -> str:
    return {None: "–", True: "[green]met[/]", False: "[red]NOT met[/]"}[ok]


def block_table(sessions: int, mode: str, runs: dict[str, dict[str, Any]], args: argparse.Namespace) -> Table:
    off, theirs, ours = runs.get("off"), runs.get("solara"), runs.get("ours")
    pace = "burst (no think time)" if args.burst else f"one change per ~{args.interval:g} s per session"
    redis_text = {"normal": "Redis direct", "slow": f"Redis +{args.slow_ms:g} ms per round trip", "down": "Redis down"}[mode]
    table = Table(title=f"{sessions:,} sessions, {redis_text}, {pace}" + (" (off: its one run, it uses no Redis)" if mode != "normal" else ""))
    for column in ("measure", "off", "Solara", "ours", "ours/Solara", "ours/off"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for label, key, fmt, scale in ROWS:
        values = [value_of(run, key, off) for run in (off, theirs, ours)]
        if key == "event_p99_pooled_ms" and all(value is None for value in values):
            continue  # one round: the row above is the same figure
        table.add_row(
            escape(label),
            *(cell(value, fmt, scale) for value in values),
            quotient(values[2], values[1]) if key != "sessions" else "",
            quotient(values[2], values[0]) if key not in (*BEYOND_OFF, "sessions") else "",
        )
    return table


def goal_lines(runs: dict[str, dict[str, Any]]) -> list[str]:
    off, theirs, ours = runs.get("off"), runs.get("solara"), runs.get("ours")
    lines = []
    if ours is not None and theirs is not None:
        whole = ours["rss_per_session_bytes"] / theirs["rss_per_session_bytes"] if theirs["rss_per_session_bytes"] > 0 else None
        if off is None:
            lines.append(
                f"RSS per session, whole server: {'–' if whole is None else f'{whole:.2f}×'} Solara's "
                "(run off too to see what each engine adds)"
            )
        else:
            # Solara's kernel, widgets and connection thread are most of a session's memory in every
            # configuration: the goal judges what each engine adds to them.
            base = off["rss_per_session_bytes"]
            ours_beyond, theirs_beyond = ours["rss_per_session_bytes"] - base, theirs["rss_per_session_bytes"] - base
            # Under a kilobyte is the figure's noise: with Redis down Solara's engine keeps nothing per
            # session (its changes are dropped), and a ratio to nothing judges nothing.
            q = ours_beyond / theirs_beyond if theirs_beyond >= RSS_NOISE else None
            lines.append(
                f"RSS per session an engine adds (beyond off) ≤ 0.5× Solara's: ours {ours_beyond / 1e3:+,.1f} KB, "
                f"Solara {theirs_beyond / 1e3:+,.1f} KB: "
                + ("– (Solara's engine adds nothing here)" if q is None else f"{q:.2f}× {verdict(q <= 0.5)}")
                + f" (whole server: {'–' if whole is None else f'{whole:.2f}×'})"
            )
    if ours is not None and off is not None:
        key = "event_p99_pooled_ms" if "event_p99_pooled_ms" in ours["extra"] else "event_p99_ms"
        p99, base = value_of(ours, key, off), value_of(off, key, off)
        q = p99 / base if p99 and base else None
        lines.append(
            f"event p99 ≤ 1.05× off{', every round pooled' if key != 'event_p99_ms' else ''}: "
            f"{'–' if q is None else f'{q:.2f}×'} {verdict(None if q is None else q <= 1.05)}"
        )
        lines.append(
            f"threads beyond off: ours {ours['threads'] - off['threads']:+d}"
            + (f", Solara {theirs['threads'] - off['threads']:+d}" if theirs is not None else "")
            + " (ours must not grow with sessions: compare the session counts)"
        )
    return lines


def merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's rounds as one run: the median of every figure (None if any round has
    none), the first round's other fields, and each figure's range in ``extra["spread"]``."""
    if len(runs) == 1:
        return runs[0]
    one: dict[str, Any] = {**runs[0], "extra": {**runs[0]["extra"], "spread": {}}}
    for source, target in ((runs[0], one), (runs[0]["extra"], one["extra"])):
        for key, value in source.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values = [run[key] if source is runs[0] else run["extra"][key] for run in runs]
                if all(isinstance(v, (int, float)) for v in values):
                    target[key] = statistics.median(values)
                    one["extra"]["spread"][key] = (min(values), max(values))
                else:
                    target[key] = None
    # A round's p99 is its ten worst events in a thousand, often one pause of the server's garbage
    # collector landing in the window or not; every round's events pooled give a steadier tail.
    pooled = [latency for run in runs for latency in run["extra"].get("latencies_ms", ())]
    one["extra"]["latencies_ms"] = pooled
    if pooled:
        one["extra"]["event_p99_pooled_ms"] = percentile(pooled, 99)
    return one


def report(results: list[dict[str, Any]], args: argparse.Namespace, console: Console) -> None:
    rounds: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for run in results:
        rounds.setdefault((run["extra"]["asked"], run["redis"], run["config"]), []).append(run)
    by_block: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    asked = sorted({n for n, _, _ in rounds})
    for (n, mode, config), runs in rounds.items():
        by_block.setdefault((n, mode), {})[config] = merged(runs)
    for n in asked:
        off = by_block.get((n, "normal"), {}).get("off")
        for mode in REDIS_MODES:
            runs = dict(by_block.get((n, mode), {}))
            if not runs:
                continue
            if off is not None:
                runs.setdefault("off", off)
            console.print(block_table(n, mode, runs, args))
            for line in goal_lines(runs):
                console.print("  " + line)
            if args.rounds > 1:
                console.print(
                    f"  medians of {args.rounds} interleaved rounds; event p99 ranges: "
                    + ", ".join(
                        f"{config} {low:,.0f}-{high:,.0f} ms"
                        for config, run in runs.items()
                        for low, high in [run["extra"]["spread"].get("event_p99_ms", (0.0, 0.0))]
                    )
                )
    beyond = [
        (n, mode, by_block[(n, mode)]["ours"]["threads"] - by_block[(n, "normal")]["off"]["threads"])
        for n in asked
        for mode in REDIS_MODES
        if "ours" in by_block.get((n, mode), {}) and "off" in by_block.get((n, "normal"), {})
    ]
    if len({n for n, _, _ in beyond}) > 1:
        console.print(
            "ours' threads beyond off, by sessions: "
            + ", ".join(f"{n:,} ({mode}): {extra:+d}" for n, mode, extra in beyond)
        )


# -- main --------------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[RunSpec]:
    """Per session count: off once (it never talks to Redis), then Solara's and ours per Redis mode."""
    specs = []
    for n in args.sessions:
        for mode in args.redis:
            for config in args.configs:
                if config == "off" and mode != args.redis[0]:
                    continue
                specs.append(RunSpec(config, n, "normal" if config == "off" else mode))
    return specs


def csv(kind: type, choices: Sequence[str] = ()) -> Any:
    def parse(text: str) -> list[Any]:
        items = [kind(item.strip()) for item in text.split(",") if item.strip()]
        bad = [item for item in items if choices and item not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices) or kind.__name__}")
        return items

    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=csv(int), default=[100, 1000], help="session counts (default 100,1000)")
    parser.add_argument("--redis", type=csv(str, REDIS_MODES), default=list(REDIS_MODES), help="normal,slow,down (default all)")
    parser.add_argument("--configs", type=csv(str, CONFIGS), default=list(CONFIGS), help="off,solara,ours (default all)")
    parser.add_argument("--seconds", type=float, help="the measured window (default 20; --quick 5)")
    parser.add_argument("--warmup", type=float, help="changes before the window opens (default 5; --quick 2)")
    parser.add_argument("--interval", type=float, default=2.0, help="mean think time between changes (default 2 s)")
    parser.add_argument("--burst", action="store_true", help="no think time: the next change as soon as the ack is back")
    parser.add_argument("--batch", type=int, default=50, help="sessions connecting at once during the ramp (default 50)")
    parser.add_argument("--connect-timeout", type=float, default=60.0, help="a page load, per attempt (default 60 s)")
    parser.add_argument("--ack-timeout", type=float, default=30.0, help="a change's ack (default 30 s)")
    parser.add_argument("--slow-ms", type=float, default=20.0, help="latency added per Redis round trip in 'slow' (default 20)")
    parser.add_argument("--quick", action="store_true", help="100 sessions only, short windows (< 3 min on a quiet 2-core machine)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every configuration this many times, interleaved; tables show medians"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server on the last CPU, the clients, redis-server and links on the others (needs 2 CPUs or more)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write {'runs': [...]} to this file")
    parser.add_argument("--keep-logs", type=Path, help="keep every server's log under this directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions = [100]
    args.seconds = args.seconds if args.seconds is not None else (5.0 if args.quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    if min(args.sessions) < 1 or args.batch < 1 or args.rounds < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("sessions, --batch and --rounds must be positive, --seconds > 0, --warmup >= 0")
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(cpus) < 2:
        parser.error(f"--pin needs 2 CPUs or more; this process may run on {len(cpus)}: drop --pin")
    args.server_cpus = {cpus[-1]} if args.pin else None
    args.client_cpus = set(cpus[:-1]) if args.pin else None
    return args


def public(run: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in run.items() if key != "extra"}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=150)
    load = [os.getloadavg()[0]]
    results: list[dict[str, Any]] = []
    logs = args.keep_logs or Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.client_cpus is not None:
        os.sched_setaffinity(0, args.client_cpus)  # before redis-server and any thread start: all inherit it
    try:
        with redis_server() as port:
            for index in range(args.rounds):  # interleaved: a drift of the machine touches every column alike
                where = logs if args.rounds == 1 else logs / f"round-{index + 1}"
                for spec in plan(args):
                    results.append(run_one(spec, port, args, where, console))
    finally:
        if args.keep_logs is None:
            shutil.rmtree(logs, ignore_errors=True)
    load.append(os.getloadavg()[0])
    report(results, args, console)
    console.print(load_line(load) + f"; {time.monotonic() - started:.0f} s in all")
    out = {"runs": [public(run) for run in results]}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM stops every process started, as Ctrl-C does
    main()
