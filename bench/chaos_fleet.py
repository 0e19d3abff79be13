"""The fault side of the chaos checker: a real local fleet, and every fault the checker schedules.

``ChaosFleet`` starts, on 127.0.0.1 and free ports: one ``redis-server`` (AOF with ``appendfsync
always`` and no RDB, so a SIGKILL and restart loses nothing Redis acknowledged), N ``solara run
--production bench/chaos_app.py`` instances, a ``LoopbackProxy`` *link* between each instance and
Redis (the instance's ``SOLARA_STATE_URL`` points at it, so one instance's Redis can be slowed or
cut alone), and a routing *front* proxy, the one address the simulated users connect to.

The front behaves like a load balancer with cookie affinity and health checks: a websocket to
``/…/api/kernels/{kernel_id}/channels`` goes to the instance its kernel is pinned to while that
instance is up; otherwise the kernel is pinned to the first up instance in its own seeded
preference order (rendezvous hashing over instance names: deterministic for a seed, a kernel
id and the set of up instances, whatever the order of the calls). Any other request goes to an
up instance picked by a seeded RNG. A fault marks an instance down *before* it acts, so a
reconnect racing the fault lands elsewhere.

Every fault returns quickly or within the bound its docstring states, and appends one dict to
``fleet.faults``: ``op``, ``wall`` (``time.time()``), ``start``/``end`` (``time.monotonic()``) and
what it did. Every process the fleet starts runs in its own session (one ``killpg`` takes all of
it) and is stopped when the ``with`` block ends, however it ends; every wait is bounded.

    with ChaosFleet(instances=3, workdir=Path("/tmp/chaos")) as fleet:
        connect(fleet.url + "/jupyter/api/kernels/<id>/channels?session_id=…")
        fleet.kill(0); fleet.replace(0); fleet.redis_latency(0.1); fleet.rotate_keys()

``solara run`` (Solara 1.64) has no option for uvicorn's ``timeout_graceful_shutdown`` and
uvicorn's ``Config`` reads no environment for it, so a SIGTERM drain is bounded here instead:
``terminate(i, drain=…)`` SIGKILLs what outlives its bound (the engine's own drain stops after
``DRAIN_TIMEOUT``, 5 s).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

import redis

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO / "tests") not in sys.path:  # server_env: the environment every test instance gets
    sys.path.insert(0, str(REPO / "tests"))

from support import free_port, server_env  # noqa: E402

from solara_persisted.dev.fleet import answers_ready, launch_solara  # noqa: E402
from solara_persisted.dev.proxy import LoopbackProxy  # noqa: E402

APP = BENCH / "chaos_app.py"
READY_TIMEOUT = 60.0  # a `solara run` start on a busy 2-core machine
RESUME_TIMEOUT = 10.0  # a SIGCONTed instance answering /readyz again
REDIS_TIMEOUT = 20.0  # redis-server answering PING (after an AOF replay on restart)
STOP_TIMEOUT = 5.0  # a SIGKILLed process reaped
CLOSE_DRAIN = 3.0  # SIGTERM grace for each instance when the fleet closes
POLL = 0.05
#: The kernel id of a Jupyter kernel channel request (Solara's websocket), from its request line.
KERNEL_REQUEST = re.compile(rb"^[A-Z]+ [^ ]*?/api/kernels/([^/?# ]+)")


def kernel_of(head: bytes) -> str | None:
    """The kernel id a request's head names (``…/api/kernels/{id}/…``), or None for any other request."""
    match = KERNEL_REQUEST.match(head)
    return match.group(1).decode("ascii", "replace") if match else None


def key_id(secret: str) -> str:
    """A short, non-secret name for a key (faults and reports never hold the secret itself)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


@dataclass(eq=False)
class ChaosInstance:
    """One ``solara run`` of the chaos app, its Redis link, and what the balancer thinks of it."""

    name: str  # CHAOS_INSTANCE: i1, i2, … in start order, never reused
    port: int
    version: int  # CHAOS_APP_VERSION
    tag: str  # SOLARA_STATE_SCHEMA_TAG
    keys: tuple[str, ...]  # SOLARA_STATE_SECRET_KEYS, signing key first
    log_path: Path
    link: LoopbackProxy  # instance ↔ Redis
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)  # as started (holds the secrets)
    up: bool = False  # the balancer routes to it
    paused: bool = False  # SIGSTOPped
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def link_url(self) -> str:
        """Redis through this instance's link: what the instance itself talks to."""
        return f"redis://127.0.0.1:{self.link.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def describe(self) -> dict[str, Any]:
        """What a report shows: no secret, only key ids."""
        return {
            "name": self.name,
            "port": self.port,
            "pid": self.pid,
            "up": self.up,
            "paused": self.paused,
            "running": self.running,
            "version": self.version,
            "tag": self.tag,
            "keys": [key_id(key) for key in self.keys],
            "log": str(self.log_path),
        }


#: What a fault names its instance by: an index into ``fleet.instances``, a name, or the instance.
Target: TypeAlias = int | str | ChaosInstance


def _signal_group(process: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)


def _reap(process: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    """Wait up to `timeout` for the process; True once it has exited (and was reaped)."""
    if process is None:
        return True
    try:
        process.wait(timeout=max(timeout, 0.0))
    except subprocess.TimeoutExpired:
        return False
    return True


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the group and reap it (bounded by STOP_TIMEOUT)."""
    _signal_group(process, signal.SIGKILL)
    _reap(process, STOP_TIMEOUT)


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


class ChaosFleet:
    """Redis, N instances with their Redis links, and the routing front proxy; a context manager.

    ``instances`` are the current N; a fault's target is an index there, an instance's name, or
    the ``ChaosInstance`` itself. A replaced instance moves to ``retired``. ``secret_keys`` is the
    fleet's ring (generated when not given). ``workdir`` keeps Redis's dir and every log (a
    temporary one, removed on exit, when not given). ``connect_timeout``/``breaker_window`` left
    None keep the engine's defaults, as a deployment runs; ``env`` is added to every instance's
    environment (a ``SOLARA_STATE_*`` tuning, say) but cannot change what the fleet itself
    controls: the Redis URL, the key ring, the schema tag, the app version, the instance name.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        instances: int = 3,
        app: Path = APP,
        debounce: float = 0.2,
        version: int = 1,
        schema_tag: str = "chaos",
        secret_keys: Sequence[str] | None = None,
        plant: str | None = None,
        seed: int = 0,
        connect_timeout: float | None = None,
        breaker_window: float | None = None,
        ready_timeout: float = READY_TIMEOUT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if instances < 1:
            raise ValueError("a fleet needs at least one instance")
        self.size = instances
        self.app = Path(app).resolve()
        self.debounce = debounce
        self.version = version
        self.schema_tag = schema_tag
        self.secret_keys: tuple[str, ...] = tuple(secret_keys or (secrets.token_urlsafe(32),))
        self.plant = plant
        self.seed = seed
        self.connect_timeout = connect_timeout  # None: the engine's defaults, as a deployment would run
        self.breaker_window = breaker_window
        self.ready_timeout = ready_timeout
        self.env = dict(env or {})
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="chaos-fleet-")
            workdir = Path(self._tmp.name)
        self.workdir = Path(workdir)
        self.faults: list[dict[str, Any]] = []
        self.instances: list[ChaosInstance] = []
        self.retired: list[ChaosInstance] = []
        self._spawned: list[ChaosInstance] = []  # every instance ever started: close() stops them all
        self.redis_port = free_port()
        self.redis_dir = self.workdir / "redis"
        self.redis_process: subprocess.Popen[bytes] | None = None
        self._redis_processes: list[subprocess.Popen[bytes]] = []  # every incarnation, for close and pids()
        self._admin: redis.Redis | None = None
        self._front: LoopbackProxy | None = None
        self._latency = 0.0  # added to each instance↔Redis round trip
        self._counter = 0
        self._lock = threading.Lock()  # the routing table: route() runs on the front proxy's thread
        self._ops = threading.RLock()  # one fault at a time
        self._pinned: dict[str, ChaosInstance] = {}  # kernel id -> its instance
        self._rng = random.Random(seed)
        self._timers: list[threading.Timer] = []
        self._redis_stopped = False
        self._closed = False

    # -- addresses and views -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The front proxy: the one address the users connect to (``ws://`` for the same host and port)."""
        assert self._front is not None, "the fleet is not started"
        return self._front.url

    @property
    def front(self) -> LoopbackProxy:
        assert self._front is not None, "the fleet is not started"
        return self._front

    @property
    def redis_url(self) -> str:
        """Redis directly, past every link: for the checker's own reads."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def instance(self, which: Target) -> ChaosInstance:
        """A current instance by index, or any instance (current or retired) by name or itself."""
        if isinstance(which, ChaosInstance):
            return which
        if isinstance(which, int):
            return self.instances[which]
        for candidate in self._spawned:
            if candidate.name == which:
                return candidate
        raise KeyError(f"no instance named {which!r}")

    def logs(self, name: str) -> str:
        """An instance's log (``redis`` for redis-server's)."""
        path = self.redis_dir / "redis.log" if name == "redis" else self.instance(name).log_path
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def owner(self, kernel_id: str) -> str | None:
        """The instance a kernel is pinned to, up or not; None before its first connection."""
        with self._lock:
            pinned = self._pinned.get(kernel_id)
        return pinned.name if pinned is not None else None

    def pids(self) -> list[int]:
        """Every process group the fleet ever started (redis-server incarnations included)."""
        processes = [instance.process for instance in self._spawned] + self._redis_processes
        return [process.pid for process in processes if process is not None]

    # -- start and close ---------------------------------------------------------------------

    def start(self) -> ChaosFleet:
        """redis-server, then the front (refusing until an instance is up), then every instance at once."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self._start_redis()
        self._front = LoopbackProxy(None, route=self._route).start()
        for _ in range(self.size):  # all at once: they start in parallel
            self.instances.append(self._spawn(self.version, self.schema_tag, self.secret_keys))
        for instance in self.instances:
            self._wait_ready(instance, self.ready_timeout)
        with self._lock:
            for instance in self.instances:
                instance.up = True
        return self

    def close(self) -> None:
        """Stop everything: front, instances (SIGTERM, SIGKILL after CLOSE_DRAIN), links, Redis. Idempotent."""
        if self._closed:
            return
        self._closed = True
        everyone = list(self._spawned)
        with contextlib.ExitStack() as stack:  # callbacks run last-in first-out, each even if one fails
            if self._tmp is not None:
                stack.callback(self._tmp.cleanup)
            if self._admin is not None:
                stack.callback(self._admin.close)
            for process in self._redis_processes:
                stack.callback(self._stop_redis_process, process)
            for instance in everyone:
                stack.callback(instance.link.close)
            stack.callback(self._stop_instances, everyone)
            if self._front is not None:
                stack.callback(self._front.close)
            for timer in self._timers:
                stack.callback(timer.cancel)
            stack.callback(self.redis_resume)  # first: instances drain on shutdown, Redis must answer

    def _stop_instances(self, instances: list[ChaosInstance]) -> None:
        for instance in instances:
            instance.up = False
            _signal_group(instance.process, signal.SIGTERM)
            _signal_group(instance.process, signal.SIGCONT)  # a paused one handles its SIGTERM
        deadline = time.monotonic() + CLOSE_DRAIN
        for instance in instances:
            if not _reap(instance.process, deadline - time.monotonic()):
                _kill(instance.process)

    @staticmethod
    def _stop_redis_process(process: subprocess.Popen[bytes]) -> None:
        _signal_group(process, signal.SIGCONT)
        _signal_group(process, signal.SIGTERM)
        if not _reap(process, STOP_TIMEOUT):
            _kill(process)

    def __enter__(self) -> ChaosFleet:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the front's routing -----------------------------------------------------------------

    def _route(self, head: bytes) -> int | None:
        """The front proxy's choice for a new connection (its thread): sticky per kernel, up instances only."""
        kernel = kernel_of(head)
        with self._lock:
            # the health check: marked up by the fleet, and the process still there (it may crash alone)
            up = [instance for instance in self.instances if instance.up and instance.running]
            if not up:
                return None
            if kernel is None:
                return self._rng.choice(up).port
            pinned = self._pinned.get(kernel)
            if pinned not in up:  # new, or its instance went down: the next in its preference order
                pinned = max(up, key=lambda instance: self._weight(kernel, instance.name))
                self._pinned[kernel] = pinned
            return pinned.port

    def _weight(self, kernel: str, name: str) -> bytes:
        return hashlib.sha256(f"{self.seed}:{kernel}:{name}".encode()).digest()

    def _set_up(self, instance: ChaosInstance, up: bool) -> None:
        with self._lock:
            instance.up = up

    # -- processes ---------------------------------------------------------------------------

    def _start_redis(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server not found on PATH: bash .ci/test installs Debian's redis-server")
        args = [server, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(self.redis_dir)]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        args += ["--logfile", str(self.redis_dir / "redis.log"), "--daemonize", "no"]
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.redis_process = process
        self._redis_processes.append(process)
        if self._admin is None:
            self._admin = redis.Redis(
                host="127.0.0.1", port=self.redis_port, socket_timeout=5, socket_connect_timeout=2
            )
        deadline = time.monotonic() + REDIS_TIMEOUT
        while True:
            try:
                if self._admin.ping():
                    return
            except redis.RedisError:  # refused while starting, or LOADING the AOF
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                _kill(process)
                raise RuntimeError(
                    f"redis-server did not answer within {REDIS_TIMEOUT:.0f} s:\n{self.logs('redis')}"
                )
            time.sleep(POLL)

    def _spawn(self, version: int, tag: str, keys: tuple[str, ...]) -> ChaosInstance:
        """Start an instance (own port, own Redis link, own dir and log); not yet ready, not yet up."""
        self._counter += 1
        name = f"i{self._counter}"
        directory = self.workdir / name
        directory.mkdir(parents=True, exist_ok=True)
        link = LoopbackProxy(self.redis_port, delay=self._latency / 2).start()
        instance = ChaosInstance(name, free_port(), version, tag, keys, directory / "solara.log", link)
        self._spawned.append(instance)  # from here on, close() stops it whatever happens next
        pythonpath = os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH", "")]))
        tunables = {"SOLARA_STATE_FLUSH_DEBOUNCE": f"{self.debounce}s", "SOLARA_SESSION_HTTP_ONLY": "true"}
        if self.connect_timeout is not None:
            tunables["SOLARA_STATE_CONNECT_TIMEOUT"] = f"{self.connect_timeout}s"
        if self.breaker_window is not None:
            tunables["SOLARA_STATE_BREAKER_WINDOW"] = f"{self.breaker_window}s"
        if self.plant:
            tunables["CHAOS_PLANT"] = self.plant
        instance.env = server_env(
            {
                **tunables,
                **self.env,
                "SOLARA_STATE_BACKEND": "redis",
                "SOLARA_STATE_URL": instance.link_url,
                "SOLARA_STATE_SECRET_KEYS": ",".join(keys),
                "SOLARA_STATE_SCHEMA_TAG": tag,
                "CHAOS_APP_VERSION": str(version),
                "CHAOS_INSTANCE": name,
                "PYTHONPATH": pythonpath,  # the app imports chaos_plants from bench/
            }
        )
        instance.process = launch_solara(
            self.app,
            instance.port,
            workdir=directory,
            env=instance.env,
            log_path=instance.log_path,
            production=True,
        )
        return instance

    def _wait_ready(self, instance: ChaosInstance, timeout: float) -> None:
        """Poll /readyz up to `timeout`; a dead or late instance is killed and named with its log tail."""
        deadline = time.monotonic() + timeout
        while not answers_ready(instance.url):
            if not instance.running:
                raise RuntimeError(f"{instance.name} exited before it was ready:\n{_tail(instance.log_path)}")
            if time.monotonic() > deadline:
                _kill(instance.process)
                raise RuntimeError(
                    f"{instance.name} not ready within {timeout:.0f} s:\n{_tail(instance.log_path)}"
                )
            time.sleep(0.1)

    def _record(self, op: str, start: float, **details: Any) -> dict[str, Any]:
        entry = {"op": op, "wall": time.time() - (time.monotonic() - start), "start": start}
        entry.update(details, end=time.monotonic())
        self.faults.append(entry)
        return entry

    def _cut_front(self, instance: ChaosInstance) -> int:
        """The balancer forgets a dead instance: its client connections reset, kept half-open ones released."""
        return self.front.drop(instance.port) + self.front.release_half_open(instance.port)

    # -- instance faults ---------------------------------------------------------------------

    def kill(self, i: Target) -> dict[str, Any]:
        """SIGKILL the instance's process group (a crash: nothing flushed), reap it, reset its
        client connections on the front (the users reconnect elsewhere). Bound: STOP_TIMEOUT."""
        with self._ops:
            start = time.monotonic()
            instance = self.instance(i)
            self._set_up(instance, False)  # first: a reconnect racing the kill goes elsewhere
            _kill(instance.process)
            instance.paused = False
            dropped = self._cut_front(instance)
            return self._record("kill", start, instance=instance.name, pid=instance.pid, dropped=dropped)

    def terminate(self, i: Target, drain: float = 5.0) -> dict[str, Any]:
        """SIGTERM (the engine drains every session on shutdown), SIGKILL if it outlives `drain`.

        Marked down first, so reconnects go elsewhere; its client connections are left to its
        own shutdown (uvicorn closes them), then whatever remains is reset on the front.
        Bound: `drain` + STOP_TIMEOUT.
        """
        with self._ops:
            start = time.monotonic()
            instance = self.instance(i)
            details = self._terminate(instance, drain)
            return self._record("terminate", start, instance=instance.name, **details)

    def _terminate(self, instance: ChaosInstance, drain: float) -> dict[str, Any]:
        self._set_up(instance, False)
        _signal_group(instance.process, signal.SIGTERM)
        _signal_group(instance.process, signal.SIGCONT)  # a paused instance wakes to its SIGTERM
        instance.paused = False
        forced = not _reap(instance.process, drain)
        if forced:
            _kill(instance.process)
        code = instance.process.returncode if instance.process is not None else None
        return {
            "pid": instance.pid,
            "forced": forced,
            "returncode": code,
            "dropped": self._cut_front(instance),
        }

    def pause(self, i: Target) -> dict[str, Any]:
        """SIGSTOP the group (a GC pause, a frozen VM), mark it down, and half-open its client links:
        the users' side is reset (they reconnect elsewhere), the instance's side stays open and
        silent, so on `resume` it still believes those kernels are connected. Returns at once."""
        with self._ops:
            start = time.monotonic()
            instance = self.instance(i)
            self._set_up(instance, False)
            _signal_group(instance.process, signal.SIGSTOP)
            instance.paused = True
            cut = self.front.half_open(instance.port)
            return self._record("pause", start, instance=instance.name, pid=instance.pid, half_open=cut)

    def resume(self, i: Target, *, mark_up: bool = True, release: bool = False) -> dict[str, Any]:
        """SIGCONT the group. The woken instance must find itself fenced out of the kernels that
        moved meanwhile (the engine's job). With `mark_up` it is routed to again once /readyz
        answers (bound: RESUME_TIMEOUT; pinned kernels stay where they moved). With `release`
        the half-open upstream sockets are reset now (otherwise they stay silent until the
        instance's websocket keepalive gives up, or a kill/terminate/close)."""
        with self._ops:
            start = time.monotonic()
            instance = self.instance(i)
            _signal_group(instance.process, signal.SIGCONT)
            instance.paused = False
            released = self.front.release_half_open(instance.port) if release else 0
            ready = False
            if mark_up:
                deadline = time.monotonic() + RESUME_TIMEOUT
                while not (ready := answers_ready(instance.url)) and instance.running:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(POLL)
                self._set_up(instance, ready)
            return self._record("resume", start, instance=instance.name, up=ready, released=released)

    def replace(
        self,
        i: Target,
        *,
        version: int | None = None,
        schema_tag: str | None = None,
        secret_keys: Sequence[str] | None = None,
        drain: float = 5.0,
    ) -> dict[str, Any]:
        """One rolling-deploy step: start a new instance (new port, new name) with the changes,
        wait until it is ready, route to it, then `terminate` the old one (dead ones too: this
        is also how a killed instance's capacity comes back). The new one takes the old one's
        index. Bound: ready_timeout + drain + STOP_TIMEOUT; if the new one does not start, it
        is killed and the old one keeps its place."""
        with self._ops:
            start = time.monotonic()
            old = self.instance(i)
            index = self.instances.index(old)  # a retired one has no place to take: ValueError
            keys = tuple(secret_keys) if secret_keys is not None else old.keys
            tag = old.tag if schema_tag is None else schema_tag
            new = self._spawn(old.version if version is None else version, tag, keys)
            try:
                self._wait_ready(new, self.ready_timeout)
            except BaseException:
                self.retired.append(new)
                raise
            with self._lock:
                self.instances[index] = new
                self.retired.append(old)
                new.up = True
            stopped = self._terminate(old, drain)
            old.link.close()
            return self._record(
                "replace",
                start,
                instance=old.name,
                new=new.name,
                version=new.version,
                tag=new.tag,
                keys=[key_id(key) for key in new.keys],
                old=stopped,
            )

    def rolling_deploy(self, **changes: Any) -> dict[str, Any]:
        """`replace` every instance in turn with the same `changes` (version, schema_tag, secret_keys, drain)."""
        with self._ops:
            start = time.monotonic()
            steps = [self.replace(i, **changes) for i in range(len(self.instances))]
            return self._record(
                "rolling_deploy", start, replaced=[(step["instance"], step["new"]) for step in steps]
            )

    def rotate_keys(
        self, new: str | None = None, *, introduce: bool = True, retire: bool = True, drain: float = 5.0
    ) -> dict[str, Any]:
        """Roll a new secret through the fleet; returns the record (the new key's id, each pass's end).

        A ring signs with its first key and verifies with any. Why two passes, ``new,old`` then
        ``new``: the first makes every instance sign with `new` while it still verifies what was
        stored under `old` (and re-signs it on its next write); `old` can only be dropped once
        no instance signs with it any more, i.e. after that whole roll, which the second pass
        does. Dropping it in one pass would leave old and new instances unable to read each
        other's writes for the whole roll. The two passes still leave the gap docs/operations.md
        names: during the first roll, an instance still on ``old`` alone cannot verify what a
        rolled one signed with `new` (cause=hmac bail-outs). So by default a pass ``old,new``
        goes first (everyone verifies `new`, nobody signs with it yet), as the runbook does;
        ``introduce=False`` gives the bare two passes. After the last pass (``new``), a session
        last written before the ``new,old`` roll finished bails out: the runbook waits a whole
        TTL before that pass, a chaos run does not, so a checker must expect those
        (``retire=False`` stops at ``new,old``). Bound: passes x instances x `replace`'s.
        """
        with self._ops:
            start = time.monotonic()
            new = new or secrets.token_urlsafe(32)
            old = tuple(key for key in self.secret_keys if key != new)
            passes: list[tuple[str, ...]] = [(*old, new)] if introduce else []
            passes.append((new, *old))
            if retire:
                passes.append((new,))
            done: list[dict[str, Any]] = []
            for ring in passes:
                step = self.rolling_deploy(secret_keys=ring, drain=drain)
                self.secret_keys = ring
                done.append({"keys": [key_id(key) for key in ring], "end": step["end"]})
            return self._record("rotate_keys", start, new=key_id(new), passes=done)

    # -- Redis faults ------------------------------------------------------------------------

    def _admin_client(self) -> redis.Redis:
        assert self._admin is not None, "the fleet is not started"
        return self._admin

    def redis_pause(self, seconds: float, *, how: str = "client") -> dict[str, Any]:
        """Redis stops answering for `seconds`; returns at once, the pause ends by itself.

        ``how="client"``: ``CLIENT PAUSE <ms> ALL`` (every client's commands wait; connections
        stay up; this fleet's own admin commands wait too). ``how="sigstop"``: SIGSTOP
        redis-server and SIGCONT it from a timer (nothing answers, not even the kernel's accept
        queue drains); `redis_resume()` ends it early.
        """
        with self._ops:
            start = time.monotonic()
            if how == "client":
                self._admin_client().execute_command("CLIENT", "PAUSE", max(int(seconds * 1000), 1), "ALL")
            elif how == "sigstop":
                _signal_group(self.redis_process, signal.SIGSTOP)
                self._redis_stopped = True
                timer = threading.Timer(seconds, self.redis_resume)
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
            else:
                raise ValueError(f"how must be 'client' or 'sigstop', not {how!r}")
            return self._record("redis_pause", start, seconds=seconds, how=how)

    def redis_resume(self) -> None:
        """End a ``sigstop`` pause now (SIGCONT); a no-op when none is on."""
        if self._redis_stopped:
            self._redis_stopped = False
            start = time.monotonic()
            _signal_group(self.redis_process, signal.SIGCONT)
            self._record("redis_resume", start)

    def redis_kill(self) -> dict[str, Any]:
        """SIGKILL redis-server (bound: STOP_TIMEOUT). The links stay; their connections end with it,
        and new ones are reset until `redis_restart`."""
        with self._ops:
            start = time.monotonic()
            self._redis_stopped = False
            _kill(self.redis_process)
            return self._record(
                "redis_kill", start, pid=self.redis_process.pid if self.redis_process else None
            )

    def redis_restart(self) -> dict[str, Any]:
        """Start redis-server again on the same port and dir: the AOF (fsynced on every write) brings
        every acknowledged write back; the instances' clients reconnect through their links on
        their next command. Bound: REDIS_TIMEOUT (until PING answers)."""
        with self._ops:
            start = time.monotonic()
            if self.redis_process is not None and self.redis_process.poll() is None:
                raise RuntimeError("redis-server is still running: redis_kill() first")
            self._start_redis()
            return self._record(
                "redis_restart", start, pid=self.redis_process.pid if self.redis_process else None
            )

    def redis_latency(self, seconds: float) -> dict[str, Any]:
        """Add `seconds` to every instance↔Redis round trip (half each way, on every link,
        live connections included; later instances inherit it). 0 clears it. Returns at once."""
        with self._ops:
            start = time.monotonic()
            self._latency = max(seconds, 0.0)
            for instance in self.instances:
                instance.link.delay = self._latency / 2
            return self._record("redis_latency", start, seconds=self._latency)

    def redis_maxmemory(self, on: bool, *, headroom: int = 64 * 1024) -> dict[str, Any]:
        """On: ``maxmemory`` just above ``used_memory`` (+`headroom` bytes) with ``noeviction``, so
        writes soon fail with OOM while reads work; off: ``maxmemory 0`` (no limit). Returns at once."""
        with self._ops:
            start = time.monotonic()
            admin = self._admin_client()
            limit = int(admin.info("memory")["used_memory"]) + headroom if on else 0
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", limit)
            return self._record("redis_maxmemory", start, on=on, maxmemory=limit)

    def cut_link(self, i: Target) -> dict[str, Any]:
        """Cut one instance off Redis: its link resets every connection and each new one (the
        instance runs degraded, the others do not notice). Returns at once."""
        with self._ops:
            start = time.monotonic()
            instance = self.instance(i)
            cut = instance.link.refuse()
            return self._record("cut_link", start, instance=instance.name, dropped=cut)

    def restore_link(self, i: Target) -> dict[str, Any]:
        """Heal `cut_link`: the instance's next Redis command connects again. Returns at once."""
        with self._ops:
            start = time.monotonic()
            instance = self.instance(i)
            instance.link.accept()
            return self._record("restore_link", start, instance=instance.name)

    def route_only(self, *which: Target) -> None:
        """Send new connections to these instances alone, as a balancer following readiness does;
        connections already open stay where they are."""
        chosen = {self.instance(target).name for target in which}
        with self._lock:
            for instance in self.instances:
                instance.up = instance.name in chosen

    # -- for a checker's own bookkeeping -----------------------------------------------------

    def up_instances(self) -> list[ChaosInstance]:
        """The instances the front routes to now."""
        with self._lock:
            return [instance for instance in self.instances if instance.up]

    def paused_instances(self) -> list[ChaosInstance]:
        """Current instances SIGSTOPped by `pause` and not resumed yet."""
        return [instance for instance in self.instances if instance.paused]

    def cut_instances(self) -> list[ChaosInstance]:
        """Current instances whose Redis link is cut."""
        return [instance for instance in self.instances if instance.link.cut]

    def all_instances(self) -> list[ChaosInstance]:
        """Every instance ever started, in start order (retired ones included)."""
        return list(self._spawned)

    def instance_env(self, which: Target) -> dict[str, str]:
        """The environment an instance was started with (its secrets included: keep it local)."""
        return dict(self.instance(which).env)

    def top_up(self, drain: float = 5.0) -> list[dict[str, Any]]:
        """Bring the fleet back to N routed instances: `replace` every current one that is down
        (killed, terminated, paused, or not answering after a resume). Resume paused ones first
        to keep them. Bound: `replace`'s, per instance replaced."""
        with self._ops:
            return [
                self.replace(index, drain=drain)
                for index, instance in enumerate(list(self.instances))
                if not (instance.up and instance.running)
            ]
