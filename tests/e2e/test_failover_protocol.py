"""Failover over Solara's websocket protocol itself, without a browser.

A previous instance's state is written for (kernel id, session cookie) by a real engine; a fresh
`solara run` instance then receives a reconnect for that kernel id and must answer the client's
app-status probe with a recoverable restore, and render the restored value on `run`.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fleet import Fleet
from solara.server.kernel import deserialize_binary_message
from websockets.sync.client import ClientConnection, connect

from solara_persisted.address import session_address
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.spec import persisted, registry

# Real server processes and a real browser on a shared 2-core machine: a failure is retried
# once or twice before it counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

COOKIE = "solara-session-id"


def message(msg_type: str, content: dict[str, Any], session: str) -> str:
    header = {"msg_id": uuid.uuid4().hex, "username": "test", "session": session, "msg_type": msg_type}
    return json.dumps(
        {
            "header": {**header, "version": "5.3", "date": ""},
            "parent_header": {},
            "metadata": {},
            "content": content,
            "buffers": [],
            "channel": "shell",
        }
    )


def receive(ws: ClientConnection) -> dict[str, Any]:
    raw = ws.recv(timeout=15)
    return json.loads(raw) if isinstance(raw, str) else deserialize_binary_message(raw)


def comm_reply(ws: ClientConnection, comm_id: str, method: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """Read messages (keeping them in ``seen``) until the control comm answers ``method``."""
    for _ in range(5000):  # bounded: a render sends a few hundred widget messages at most
        msg = receive(ws)
        seen.append(msg)
        content = msg.get("content", {})
        if content.get("comm_id") == comm_id and content.get("data", {}).get("method") == method:
            return content["data"]
    raise AssertionError(f"no {method!r} reply on the control comm")


@pytest.fixture
def previous_instance(env: dict[str, str]) -> Iterator[Engine]:
    """The engine of the instance that died: same secrets, same Redis, same declared key."""
    settings = Settings.from_env(env)  # the instances' own environment
    with registry.isolated():

        @persisted(key="e2e.count")
        def count() -> int:
            return 0

        engine = Engine(settings)
        yield engine
        engine.close()


def write_state(engine: Engine, kernel_id: str, cookie: str, value: int) -> None:
    restored = engine.restore(kernel_id, cookie)
    session = engine.open_session(kernel_id, restored, lambda keys: dict.fromkeys(keys, value))
    engine.mark_dirty(session, "e2e.count")
    assert engine.drain(5.0) == 0


def test_reconnect_to_a_fresh_instance_restores_over_the_websocket(
    fleet: Fleet, env: dict[str, str], previous_instance: Engine
) -> None:
    kernel_id, cookie, page = str(uuid.uuid4()), secrets.token_urlsafe(16), uuid.uuid4().hex
    write_state(previous_instance, kernel_id, cookie, 5)
    fresh = fleet.server("persisted_counter.py", env=env, name="fresh")
    url = f"ws://127.0.0.1:{fresh.port}/jupyter/api/kernels/{kernel_id}/channels?session_id={page}"
    with connect(url, additional_headers={"Cookie": f"{COOKIE}={cookie}"}, open_timeout=10) as ws:
        control = uuid.uuid4().hex
        ws.send(message("comm_open", {"comm_id": control, "target_name": "solara.control", "data": {}}, page))
        ws.send(message("comm_msg", {"comm_id": control, "data": {"method": "app-status"}}, page))
        seen: list[dict[str, Any]] = []
        status = comm_reply(ws, control, "app-status", seen)
        assert status["started"] is False and status["canRecover"] is True, status
        assert status["lastRestore"]["status"] == "success"
        run = {"method": "run", "args": {"path": "", "appName": "__default__"}}
        ws.send(message("comm_msg", {"comm_id": control, "data": run}, page))
        comm_reply(ws, control, "finished", seen)
    rendered = json.dumps([msg.get("content", {}) for msg in seen])
    assert "Persisted: 5" in rendered and "Plain: 0" in rendered
    assert "restore result=success kernel=" + kernel_id in fresh.logs()


def test_a_stranger_cookie_gets_a_fresh_page_and_no_state(
    fleet: Fleet, env: dict[str, str], previous_instance: Engine
) -> None:
    kernel_id, page = str(uuid.uuid4()), uuid.uuid4().hex
    write_state(previous_instance, kernel_id, "the-owner", 5)
    owner = session_address("the-owner", kernel_id)
    generation = previous_instance.backend.peek_generation(owner)
    fresh = fleet.server("persisted_counter.py", env=env, name="fresh")
    url = f"ws://127.0.0.1:{fresh.port}/jupyter/api/kernels/{kernel_id}/channels?session_id={page}"
    with connect(url, additional_headers={"Cookie": f"{COOKIE}=a-stranger"}, open_timeout=10) as ws:
        control = uuid.uuid4().hex
        ws.send(message("comm_open", {"comm_id": control, "target_name": "solara.control", "data": {}}, page))
        ws.send(message("comm_msg", {"comm_id": control, "data": {"method": "app-status"}}, page))
        status = comm_reply(ws, control, "app-status", [])
    assert status["lastRestore"]["status"] == "miss" and status["lastRestore"]["nFields"] == 0
    assert previous_instance.backend.peek_generation(owner) == generation, "nothing was written or bumped"
