"""``solara-persisted demo --fleet``: a real failover on one machine, driven from the keyboard.

The memory-backend demo only simulates losing an instance. Here nothing is simulated: a local
``redis-server``, two ``solara run`` processes sharing it and one key ring, and a loopback proxy
in front of them. Killing the serving instance is a SIGKILL of its process group (it loses what a
crash loses) and the proxy switching over is what a load balancer does; the browser reconnects
and the page restores from Redis. The killed instance comes back as the standby, so a person can
fail over again and again. Every child is killed on the way out, however the command ends.

At a terminal a single key acts (Enter or ``k`` fails over, ``q`` quits: the terminal is put in
cbreak mode and restored on the way out); from a pipe, as in a test, each line is a command.
The proxy binds the demo port before anything else starts, so a busy port is one line.
Each instance gets ``SOLARA_PERSISTED_DEMO_INSTANCE`` (``A`` or ``B``) so a page can name it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import click
import redis
from rich.console import Console
from rich.markup import escape

from .proxy import LoopbackProxy

READY_TIMEOUT = 60.0  # two Solara servers starting at once on a small machine
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.5
#: The ``/resourcez`` ``state`` counters a person watches while failing over.
RESTORE_FIELDS = ("restore_attempts", "restore_success", "restore_bailout", "restore_miss")
#: Each instance's name, in its environment, for a page that wants to show which one serves it.
INSTANCE_ENV = "SOLARA_PERSISTED_DEMO_INSTANCE"
#: What a key at the terminal means: Enter (CR or LF) and k fail over, q and Ctrl-D quit.
KEYS = {"\r": "", "\n": "", "k": "k", "K": "k", "q": "q", "Q": "q", "\x04": "q"}
#: A terminal escape sequence (CSI or SS3, as arrow and function keys send), or a lone Escape.
_ESCAPE = re.compile(r"\x1b(?:\[[0-9;?]*[@-~]|O.|)")
MISSING_REDIS = (
    "redis-server was not found on PATH; the fleet demo runs a local one. "
    "Run `bash .ci/demo --fleet`, which installs Debian's redis-server package first"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> bool:
    """Signal the child's process group and wait for it; False when it outlived `timeout`."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful shutdown), SIGKILL when that takes longer than STOP_TIMEOUT."""
    if not _kill_group(process, signal.SIGTERM, STOP_TIMEOUT):
        _kill_group(process, signal.SIGKILL, STOP_TIMEOUT)


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def launch_solara(
    app: str | Path,
    port: int,
    *,
    workdir: Path,
    env: Mapping[str, str],
    log_path: Path,
    production: bool = False,
) -> subprocess.Popen[bytes]:
    """``solara run`` on a loopback port in its own session (one killpg takes all of it),
    stdout and stderr appended to ``log_path``; not yet ready when this returns."""
    args = [sys.executable, "-m", "solara", "run", str(app), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--no-open", "--no-check-version"]
    args += ["--production"] if production else []
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            args,
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def answers_ready(url: str) -> bool:
    """Whether the server at ``url`` answers ``/readyz``; False while it cannot (starting, dying,
    or SIGKILLed halfway through the response, which is an ``http.client.IncompleteRead``)."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # URLError is an OSError
        return False


class Instance:
    """One ``solara run`` of the app on a fixed loopback port, restartable after a kill."""

    def __init__(self, name: str, app: Path, env: Mapping[str, str], workdir: Path) -> None:
        self.name = name
        self.app = app
        self.env = {**env, INSTANCE_ENV: name}
        self.port = _free_port()
        self.workdir = workdir / name
        self.log_path = self.workdir / "solara.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ready = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process (in its own session, so one killpg takes all of it); not yet ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready = False
        self.process = launch_solara(
            self.app, self.port, workdir=self.workdir, env=self.env, log_path=self.log_path
        )

    def wait_ready(self, cancelled: threading.Event) -> bool:
        """Poll ``/readyz`` until it answers; False when the process died, it took too long or we quit."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not cancelled.is_set() and time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if answers_ready(self.url):
                self.ready = True
                return True
            cancelled.wait(0.2)
        return False

    def kill(self) -> None:
        """SIGKILL: a crash or an OOM kill, nothing gets to flush."""
        self.ready = False
        if self.process is not None:
            _kill_group(self.process, signal.SIGKILL, STOP_TIMEOUT)

    def stop(self) -> None:
        self.ready = False
        if self.process is not None:
            _stop(self.process)

    def state(self) -> dict[str, Any] | None:
        """The ``state`` block of this instance's ``/resourcez``, or None while it cannot answer.

        A failover SIGKILLs the instance at any moment, also halfway through this response
        (``http.client.IncompleteRead``): that is an instance that cannot answer, too.
        """
        if not self.ready:
            return None
        try:
            with urllib.request.urlopen(f"{self.url}/resourcez", timeout=2) as response:
                block = json.load(response).get("state")
        except (OSError, ValueError, http.client.HTTPException):  # URLError is an OSError
            return None
        return block if isinstance(block, dict) else None

    def log_tail(self) -> str:
        return _tail(self.log_path)


class DemoFleet:
    """redis-server, instances A and B, and the proxy on the demo port; `close()` ends all of it."""

    def __init__(self, console: Console, *, app: Path, host: str, port: int, debounce: float) -> None:
        self.console = console
        self.host = host
        self.port = port
        self._tmp = tempfile.TemporaryDirectory(prefix="solara-persisted-fleet-")
        self.workdir = Path(self._tmp.name)
        self.app = app
        self.debounce = debounce
        self.redis: subprocess.Popen[bytes] | None = None
        self.instances: list[Instance] = []
        self.proxy: LoopbackProxy | None = None
        self.serving: Instance | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()  # guards process starts against close()
        self._threads: list[threading.Thread] = []
        self._seen: dict[str, tuple[int, ...]] = {}

    def start(self) -> None:
        """The proxy first (it holds the demo port), then redis-server (both instances need it at
        start-up), then A and B; the proxy refuses connections until A is ready."""
        server = shutil.which("redis-server")
        if server is None:
            raise click.ClickException(MISSING_REDIS)
        self.proxy = LoopbackProxy(None, host=self.host, port=self.port)
        try:
            self.proxy.start()
        except OSError as error:
            self.proxy.close()
            self.proxy = None
            raise click.ClickException(
                f"the demo port {self.host}:{self.port} cannot be used ({error.strerror or error}). "
                "Fix: pass --port with a free one"
            ) from error
        url = self._start_redis(server)
        env = {
            **os.environ,
            "SOLARA_STATE_BACKEND": "redis",
            "SOLARA_STATE_URL": url,
            "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),  # one ring for the whole fleet
            "SOLARA_STATE_FLUSH_DEBOUNCE": f"{self.debounce}s",
            "SOLARA_SESSION_HTTP_ONLY": "true",
            "SOLARA_MODE": "development",
            "PYTHONUNBUFFERED": "1",  # log lines reach the file before a SIGKILL
        }
        env.pop("SOLARA_STATE_TEST_EVICTION", None)  # failover is real here, no simulate button
        self.instances = [Instance(name, self.app, env, self.workdir) for name in ("A", "B")]
        self.console.print(
            f"redis-server on {url}; starting instances A and B (logs in {self.workdir} until the end)"
        )
        for instance in self.instances:
            self._spawn(instance)
        for instance in self.instances:
            if not instance.wait_ready(self._closing):
                raise click.ClickException(
                    f"instance {instance.name} did not start; its log:\n{instance.log_tail()}"
                )
            self.console.print(f"instance [bold]{instance.name}[/] ready on {instance.url}")
        self.serving = self.instances[0]
        self.proxy.target = self.serving.port
        self._background(self._watch, "fleet-watch")

    def _start_redis(self, server: str) -> str:
        port = _free_port()
        args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")]
        with self._lock:
            self.redis = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
            )
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        with contextlib.closing(client):
            while True:
                try:
                    if client.ping():
                        return f"redis://127.0.0.1:{port}/0"
                except redis.RedisError:
                    pass
                if self.redis.poll() is not None or time.monotonic() > deadline:
                    raise click.ClickException(
                        f"redis-server did not start:\n{_tail(self.workdir / 'redis.log')}"
                    )
                time.sleep(0.05)

    def _spawn(self, instance: Instance) -> None:
        with self._lock:
            if not self._closing.is_set():
                instance.start()

    def _background(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def serve(self, commands: Iterable[str]) -> None:
        """Act on each command: ``""`` (Enter) or ``k`` fails over, ``q`` (or the end of input) quits.

        ``commands`` are single keys at a terminal (``keys``) or lines from a pipe (``lines``).
        """
        assert self.proxy is not None and self.serving is not None
        self.console.print(
            f"\n[bold green]Open {self.proxy.url}[/] (the proxy). Now serving: [bold]{self.serving.name}[/]. "
            "Change the filters, pick a product, go to a checkout step, then:"
        )
        self.console.print(
            "  [bold]Enter[/] (or k): SIGKILL the serving instance and fail over to the other   "
            "[bold]q[/]: quit\n"
        )
        for command in commands:
            if command in ("", "k"):
                self.failover()
            elif command == "q":
                return
            else:
                self.console.print(f"unknown key {escape(repr(command))}: Enter or k fails over, q quits")

    def failover(self) -> None:
        """Kill the serving instance, point the proxy at the standby, bring the killed one back."""
        assert self.proxy is not None and self.serving is not None
        dead = self.serving
        standby = next(instance for instance in self.instances if instance is not dead)
        if not standby.ready:
            self.console.print(
                f"[yellow]{standby.name} is not ready yet[/], so {dead.name} keeps serving; "
                f"try again once '{standby.name} is back' shows"
            )
            return
        pid = dead.process.pid if dead.process else None
        # The standby serves from the moment the proxy points at it: the browser reconnects as
        # soon as the dying instance's sockets close, well before kill() has reaped it, and can
        # restore on the standby meanwhile. So `serving` switches first, and _watch reports
        # that restore as the serving instance's rather than the standby's.
        self.serving = standby
        self.proxy.target = standby.port  # before the kill, so a reconnect racing it lands there
        dead.kill()
        # the balancer's health check noticed: cut what still points at the dead one, and only
        # that (a reconnect that already landed on the standby during the kill stays up)
        self.proxy.drop(dead.port)
        self.console.print(
            f"[bold red]killed {dead.name}[/] (SIGKILL, pid {pid}). Now serving: [bold]{standby.name}[/] "
            f"(the proxy → {standby.url}). Watch the page reconnect and restore. "
            f"Restarting {dead.name} as the standby."
        )
        self._background(self._restart, f"restart-{dead.name}", dead)

    def _restart(self, instance: Instance) -> None:
        self._spawn(instance)
        if instance.wait_ready(self._closing):
            self.console.print(f"[green]{instance.name} is back[/] on {instance.url}, standing by")
        elif not self._closing.is_set():
            self.console.print(f"[red]{instance.name} did not come back[/]:\n{escape(instance.log_tail())}")

    def _watch(self) -> None:
        """Print each instance's restore counters whenever they change (a reconnect landing there)."""
        while not self._closing.wait(POLL_INTERVAL):
            for instance in self.instances:
                block = instance.state()
                if block is None:
                    continue
                counts = tuple(int(block.get(field, 0)) for field in RESTORE_FIELDS)
                if self._seen.get(instance.name) != counts:
                    self._seen[instance.name] = counts
                    role = "serving" if instance is self.serving else "standby"
                    shown = " ".join(f"{field}={n}" for field, n in zip(RESTORE_FIELDS, counts, strict=True))
                    self.console.print(f"[bold]{instance.name}[/] ({role}) /resourcez state: {shown}")

    def close(self) -> None:
        """Proxy, instances, then redis; bounded, and each step runs even if an earlier one failed."""
        self._closing.set()
        with contextlib.ExitStack() as stack:
            stack.callback(self._tmp.cleanup)
            if self.redis is not None:
                stack.callback(_stop, self.redis)
            with self._lock:  # waits out a restart mid-spawn; none can start after _closing
                for instance in self.instances:
                    stack.callback(instance.stop)
            if self.proxy is not None:
                stack.callback(self.proxy.close)
            for thread in self._threads:
                stack.callback(thread.join, STOP_TIMEOUT)


def lines(stream: Iterable[str]) -> Iterator[str]:
    """Commands from a pipe: one per line (Enter alone is ``""``), case and spaces ignored."""
    for line in stream:
        yield line.strip().lower()


def keys(fd: int) -> Iterator[str]:
    """Commands from a terminal in cbreak mode: one per key, no Enter needed (see ``KEYS``).

    An escape sequence (an arrow key) is one unknown command, not three.
    """
    while data := os.read(fd, 64):
        text = data.decode(errors="replace")
        at = 0
        while at < len(text):
            sequence = _ESCAPE.match(text, at)
            if sequence:
                yield sequence.group()
                at = sequence.end()
            else:
                yield KEYS.get(text[at], text[at])
                at += 1


@contextlib.contextmanager
def cbreak(fd: int) -> Iterator[None]:
    """Keys arrive one at a time and are not echoed; Ctrl-C still interrupts. Restored however it ends."""
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _serve_stdin(fleet: DemoFleet) -> None:
    stdin = sys.stdin
    if stdin is not None and stdin.isatty():
        with cbreak(stdin.fileno()):
            fleet.serve(keys(stdin.fileno()))
    else:
        fleet.serve(lines(stdin or ()))


def run(console: Console, *, app: Path, host: str, port: int, debounce: float) -> None:
    """Run the fleet until ``q``, EOF, Ctrl-C or SIGTERM; nothing it started outlives it."""
    fleet = DemoFleet(console, app=app, host=host, port=port, debounce=debounce)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    interrupted = False
    try:
        fleet.start()
        _serve_stdin(fleet)
    except KeyboardInterrupt:
        interrupted = True
        console.print("interrupted")
    finally:
        # a second Ctrl-C must not cut the (bounded) clean-up short and leave children behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if fleet.redis is not None:
                console.print("stopping the proxy, the instances and redis-server")
            fleet.close()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, previous)
    console.print("[green]fleet stopped[/]")
    if interrupted:
        raise SystemExit(130)  # the shell's convention for a command ended by Ctrl-C
