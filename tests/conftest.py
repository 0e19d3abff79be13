"""Real Redis for the suite: a server, a Sentinel with its own master, a three-node Cluster; all loopback.

Nothing here is mocked. ``redis-server`` comes from Debian's package; the README's test command
(``bash .ci/test``) installs it, so a missing binary fails loudly instead of skipping tests.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

# the fleet harness's fixtures (real solara servers, the loopback proxy, Debian chromium), suite-wide
from pytest_redis import factories
from pytest_redis.executor import RedisExecutor

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
MISSING = (
    "redis-server/redis-cli not found on PATH. The tests run against a real Redis: run the README's "
    "test command, bash .ci/test, which installs Debian's redis-server package first"
)
STARTUP_TIMEOUT = 20.0
SENTINEL_SERVICE = "solara"

redis_server_proc = factories.redis_proc(executable=REDIS_SERVER or "redis-server", port=None)
# Sentinel talks to its master every second; it gets a server of its own so that traffic never
# shows up in another test's measurements.
sentinel_master_proc = factories.redis_proc(executable=REDIS_SERVER or "redis-server", port=None)


def _require_redis() -> tuple[str, str]:
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.fail(MISSING, pytrace=False)
    return REDIS_SERVER, REDIS_CLI


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> RedisExecutor:
    """The session's redis-server (pytest-redis), listening on a free port and a unix socket."""
    _require_redis()
    return request.getfixturevalue("redis_server_proc")


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisExecutor) -> str:
    return f"redis://{redis_server.host}:{redis_server.port}/0"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client to inspect what a backend wrote; the database is emptied afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.flushdb()
    client.close()


def free_port(*, bus: bool = False) -> int:
    """A free loopback port; with ``bus``, its Cluster bus port (port + 10000) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def _wait_for(
    what: str, ready: Callable[[], bool], processes: list[subprocess.Popen[bytes]], logs: Path
) -> None:
    """Poll ``ready`` for a bounded time; fail early when a server process died."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready():
        dead = [p for p in processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up; server logs are in {logs}")
        time.sleep(0.05)


def _cli(cli: str, port: int, *args: str) -> str:
    done = subprocess.run(
        [cli, "-p", str(port), *args], capture_output=True, text=True, timeout=10, check=False
    )
    return done.stdout


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-primary Redis Cluster (no replicas) on free loopback ports."""
    server, cli = _require_redis()
    workdir = tmp_path_factory.mktemp("redis-cluster")
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port(bus=True)
        if port not in ports:
            ports.append(port)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            args = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", str(workdir / f"nodes-{port}.conf"), "--dir", str(workdir)]
            args += ["--save", "", "--appendonly", "no", "--logfile", str(workdir / f"redis-{port}.log")]
            processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            _wait_for(
                f"cluster node {port}",
                lambda port=port: _cli(cli, port, "ping").strip() == "PONG",
                processes,
                workdir,
            )
        create = [cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports)]
        subprocess.run(
            [*create, "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, timeout=60, check=True
        )
        _wait_for(
            "the cluster (cluster_state:ok on every node)",
            lambda: all("cluster_state:ok" in _cli(cli, port, "cluster", "info") for port in ports),
            processes,
            workdir,
        )
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        _stop(processes)


@pytest.fixture(scope="session")
def redis_sentinel_master(request: pytest.FixtureRequest) -> RedisExecutor:
    """The redis-server the Sentinel below watches (not the shared one)."""
    _require_redis()
    return request.getfixturevalue("sentinel_master_proc")


@pytest.fixture(scope="session")
def redis_sentinel_url(
    redis_sentinel_master: RedisExecutor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Sentinel watching ``redis_sentinel_master`` as service ``solara``."""
    server, cli = _require_redis()
    master = redis_sentinel_master
    workdir = tmp_path_factory.mktemp("redis-sentinel")
    port = free_port()
    config = workdir / "sentinel.conf"  # Sentinel rewrites its config file, so it gets its own
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\nlogfile {workdir / 'sentinel.log'}\n"
        f"sentinel monitor {SENTINEL_SERVICE} {master.host} {master.port} 1\n"
    )
    processes = [
        subprocess.Popen(
            [server, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    ]
    try:
        _wait_for(
            "redis sentinel",
            lambda: (
                str(master.port) in _cli(cli, port, "sentinel", "get-master-addr-by-name", SENTINEL_SERVICE)
            ),
            processes,
            workdir,
        )
        yield f"redis+sentinel://127.0.0.1:{port}/{SENTINEL_SERVICE}/0"
    finally:
        _stop(processes)


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    """The environment of a fleet's instances: one Redis, one key ring, a prefix of this test's own."""
    return {
        "SOLARA_STATE_BACKEND": "redis",
        "SOLARA_STATE_URL": redis_url,
        "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),
        "SOLARA_STATE_PREFIX": f"e{uuid.uuid4().hex[:6]}:",
        "SOLARA_STATE_FLUSH_DEBOUNCE": "100ms",
        "SOLARA_SESSION_HTTP_ONLY": "true",
    }


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A test's own server processes: whatever still runs at the end is killed with its group."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
