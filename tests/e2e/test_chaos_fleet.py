"""The chaos checker's fault side does what each fault says, observed from outside.

One real fleet (``bench/chaos_fleet.py``: redis-server with AOF, two ``solara run`` instances of
``bench/chaos_app.py``, a Redis link per instance, the routing front proxy) is shared by the
module, and each test leaves it with two healthy instances up. Kernels are driven over Solara's
own websocket protocol (the control comm's ``app-status``, whose first message runs the restore),
as the simulated users do. Every process the fleet started is gone at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from support import REPO, wait_until
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

if str(REPO / "bench") not in sys.path:  # the chaos harness lives with the benches, not in the package
    sys.path.insert(0, str(REPO / "bench"))
from chaos_client import message
from chaos_fleet import ChaosFleet, ChaosInstance, kernel_of

# Real server processes on a shared 2-core machine: a failure is retried once or twice before it
# counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

COOKIE = "solara-session-id"


@pytest.fixture(scope="module")
def chaos(solara_cdn_assets: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosFleet]:
    """Two instances, a short debounce, a short breaker window (a cut link heals within the test)."""
    fleet = ChaosFleet(
        instances=2, debounce=0.1, breaker_window=1.0, workdir=tmp_path_factory.mktemp("chaos"), seed=7
    )
    with fleet:
        yield fleet
    leftovers = [pid for pid in fleet.pids() if _group_alive(pid)]
    assert not leftovers, f"process groups the fleet left running: {leftovers}"
    assert fleet.pids(), "the fleet started nothing?"


@pytest.fixture
def healthy(chaos: ChaosFleet) -> Iterator[ChaosFleet]:
    """The fleet as each test expects it, and as each leaves it: every link and Redis normal, all up."""
    yield chaos
    chaos.redis_latency(0)
    for instance in chaos.cut_instances():
        chaos.restore_link(instance)
    for instance in chaos.paused_instances():
        chaos.resume(instance)
    chaos.top_up(drain=1.0)


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _state(pid: int) -> str:
    """The process state letter from /proc (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _resourcez(instance: ChaosInstance) -> dict[str, Any]:
    with urllib.request.urlopen(f"{instance.url}/resourcez", timeout=5) as response:
        return json.load(response)["state"]


@contextlib.contextmanager
def _open(base: str, kernel: str, cookie: str) -> Iterator[ClientConnection]:
    """A kernel's websocket (through the front, or straight to an instance), its app-status answered."""
    page = uuid.uuid4().hex
    url = base.replace("http://", "ws://") + f"/jupyter/api/kernels/{kernel}/channels?session_id={page}"
    with connect(url, additional_headers={"Cookie": f"{COOKIE}={cookie}"}, open_timeout=10) as ws:
        control = uuid.uuid4().hex
        ws.send(
            message("comm_open", {"comm_id": control, "target_name": "solara.control", "data": {}}, page)
        )
        ws.send(message("comm_msg", {"comm_id": control, "data": {"method": "app-status"}}, page))
        for _ in range(1000):  # bounded: the answer comes among a few messages
            raw = ws.recv(timeout=15)
            if isinstance(raw, str) and '"app-status"' in raw and control in raw:
                break
        else:
            raise AssertionError("no app-status answer")
        yield ws


def _ended(ws: ClientConnection) -> bool:
    """True once the connection ends within a few seconds (what was already sent is read first)."""
    try:
        for _ in range(1000):
            ws.recv(timeout=5)
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False
    return False


def _probe(base: str, kernel: str | None = None) -> str:
    """Open a kernel, have it restore, close it; returns the kernel id."""
    kernel = kernel or str(uuid.uuid4())
    with _open(base, kernel, secrets.token_urlsafe(12)):
        pass
    return kernel


def test_kernel_ids_are_read_from_the_request_line() -> None:
    head = b"GET /jupyter/api/kernels/k-1/channels?session_id=s HTTP/1.1\r\nHost: x\r\n\r\n"
    assert kernel_of(head) == "k-1"
    assert kernel_of(b"GET /readyz HTTP/1.1\r\n\r\n") is None


def test_kill_ends_the_process_and_the_kernel_moves_to_the_other_instance(healthy: ChaosFleet) -> None:
    fleet = healthy
    kernel, cookie = str(uuid.uuid4()), secrets.token_urlsafe(12)
    with _open(fleet.url, kernel, cookie) as ws:
        first = fleet.instance(fleet.owner(kernel) or "")
        wait_until(
            lambda: f"kernel={kernel}" in fleet.logs(first.name), "the pinned instance restoring it", 5
        )
        with _open(fleet.url, kernel, cookie):  # sticky while up: the same instance again
            assert fleet.owner(kernel) == first.name
        record = fleet.kill(first.name)
        assert record["op"] == "kill" and record["instance"] == first.name
        assert first.process is not None and first.process.returncode == -signal.SIGKILL
        assert not _group_alive(first.process.pid), "the killed instance's process group is still there"
        assert _ended(ws), "the front did not reset the user's connection"
    with _open(fleet.url, kernel, cookie):
        second = fleet.owner(kernel)
    assert second is not None and second != first.name
    wait_until(lambda: f"kernel={kernel}" in fleet.logs(second), "the other instance restoring it", 5)


def test_replace_starts_a_new_instance_with_the_change_and_stops_the_old_one(healthy: ChaosFleet) -> None:
    fleet = healthy
    old = fleet.instances[0]
    record = fleet.replace(0, version=2, schema_tag="chaos-2")
    new = fleet.instances[0]
    assert (record["instance"], record["new"]) == (old.name, new.name) and new.name != old.name
    assert new.port != old.port and new.up and not old.up
    assert old.process is not None and old.process.poll() is not None, "the old instance still runs"
    assert not record["old"]["forced"], "an idle instance needed a SIGKILL to stop"
    environ = _environ(new.process.pid if new.process else 0)
    assert (environ["CHAOS_APP_VERSION"], environ["SOLARA_STATE_SCHEMA_TAG"]) == ("2", "chaos-2")
    assert environ["CHAOS_INSTANCE"] == new.name
    kernel = _probe(new.url)  # it serves
    wait_until(lambda: f"kernel={kernel}" in fleet.logs(new.name), "the new instance restoring a kernel", 5)
    fleet.replace(0, version=1, schema_tag="chaos", drain=1.0)  # back to the module's fleet


def test_pause_stops_the_process_and_resume_wakes_it(healthy: ChaosFleet) -> None:
    fleet = healthy
    paused = fleet.instances[1]
    assert paused.pid is not None
    fleet.pause(paused)
    try:
        wait_until(lambda: _state(paused.pid or 0) == "T", "the paused instance stopped (state T)", 5)
        assert not paused.up and fleet.up_instances() == [fleet.instances[0]]
        assert fleet.paused_instances() == [paused]
        _probe(fleet.url)  # the front still serves, from the other instance
    finally:
        record = fleet.resume(paused)
    wait_until(lambda: _state(paused.pid or 0) != "T", "the resumed instance running again", 5)
    assert record["up"] and paused.up


def test_cut_link_degrades_one_instance_and_restore_link_heals_it(healthy: ChaosFleet) -> None:
    fleet = healthy
    cut, other = fleet.instances
    fleet.cut_link(0)
    assert cut.link.cut
    _probe(cut.url)  # a restore through the cut link fails
    wait_until(lambda: _resourcez(cut)["status"] == "degraded", "the cut instance reporting degraded", 10)
    assert _resourcez(other)["status"] == "healthy", "the other instance's link was cut too"
    fleet.restore_link(0)

    def healed() -> bool:
        time.sleep(0.5)  # the breaker's window (1 s here) before its half-open probe
        _probe(cut.url)
        return _resourcez(cut)["status"] == "healthy"

    wait_until(healed, "the instance healthy again once its link is back", 15)


def test_redis_latency_slows_a_ping_through_a_link(healthy: ChaosFleet) -> None:
    fleet = healthy
    client = redis.Redis.from_url(fleet.instances[0].link_url, socket_timeout=5)
    try:

        def ping() -> float:
            started = time.monotonic()
            assert client.ping()
            return time.monotonic() - started

        ping()  # connected
        fleet.redis_latency(0.6)
        assert ping() >= 0.5, "the added latency did not show on a round trip"
        fleet.redis_latency(0)
        assert ping() < 0.5, "clearing the latency did not apply"
    finally:
        client.close()


def test_redis_kill_and_restart_keep_what_redis_acknowledged(healthy: ChaosFleet) -> None:
    fleet = healthy
    key, value = f"chaos-test:{uuid.uuid4().hex}", secrets.token_hex(8)
    client = redis.Redis.from_url(fleet.redis_url, socket_timeout=2, socket_connect_timeout=1)
    try:
        assert client.set(key, value)
        fleet.redis_kill()
        assert fleet.redis_process is not None and fleet.redis_process.poll() is not None
        with pytest.raises(redis.ConnectionError):
            client.ping()
        fleet.redis_restart()
        assert client.get(key) == value.encode(), "the AOF did not bring an acknowledged write back"
        _probe(fleet.url)  # the instances reconnect through their links
    finally:
        client.close()


def test_redis_pause_both_ways_and_maxmemory(healthy: ChaosFleet) -> None:
    fleet = healthy
    client = redis.Redis.from_url(fleet.redis_url, socket_timeout=5)
    try:
        client.ping()
        fleet.redis_pause(0.5)
        started = time.monotonic()
        client.set("chaos-test:paused", "1")
        assert time.monotonic() - started >= 0.3, "CLIENT PAUSE did not hold a write"

        fleet.redis_pause(1.0, how="sigstop")
        assert fleet.redis_process is not None
        pid = fleet.redis_process.pid
        wait_until(lambda: _state(pid) == "T", "redis-server stopped (state T)", 1)
        wait_until(lambda: _state(pid) != "T", "redis-server continued by its timer", 5)
        assert client.ping()

        fleet.redis_maxmemory(True)
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            for n in range(100):
                client.set(f"chaos-test:big{n}", "x" * 50_000)
        assert client.get("chaos-test:paused") == b"1", "reads still work under the memory limit"
        fleet.redis_maxmemory(False)
        assert client.set("chaos-test:after", "x" * 50_000)
    finally:
        client.delete(*[f"chaos-test:big{n}" for n in range(100)])
        client.close()


def test_rotate_keys_ends_with_the_new_ring_on_every_instance(healthy: ChaosFleet) -> None:
    fleet = healthy
    before = {instance.name: _resourcez(instance)["key_ring_fingerprint"] for instance in fleet.instances}
    new = secrets.token_urlsafe(32)
    record = fleet.rotate_keys(new, drain=1.0)
    assert [len(step["keys"]) for step in record["passes"]] == [2, 2, 1]  # old,new; new,old; new
    assert fleet.secret_keys == (new,)
    for instance in fleet.instances:
        assert instance.up and instance.name not in before, "an instance was not replaced"
        assert instance.keys == (new,)
        assert _environ(instance.pid or 0)["SOLARA_STATE_SECRET_KEYS"] == new
    fingerprints = {_resourcez(instance)["key_ring_fingerprint"] for instance in fleet.instances}
    assert len(fingerprints) == 1 and not fingerprints & set(before.values())
    assert all(not retired.running for retired in fleet.retired)
