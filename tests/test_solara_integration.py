"""The Solara seams, in process: real kernel contexts, our engine in their persistence slot.

Servers, proxies and a browser are exercised by the fleet tests; these pin the contract with
Solara's internals (restore before first read, change listener, close reasons, /resourcez,
one engine only) quickly and deterministically.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import solara
import solara.server.settings as server_settings
import solara.server.starlette  # a Solara server process: reactives scope per kernel
import solara.state
from solara.server import kernel, kernel_context
from starlette.testclient import TestClient

from solara_persisted import solara_integration, state_generation
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.errors import ConfigError
from solara_persisted.spec import persisted, persisted_family, registry

DEBOUNCE = 0.05


@pytest.fixture
def engine(redis_url: str) -> Iterator[Engine]:
    settings = Settings(
        backend="redis",
        url=redis_url,
        prefix=f"i{uuid.uuid4().hex[:6]}:",
        secret_keys=(secrets.token_urlsafe(32),),
        flush_debounce=DEBOUNCE,
        session_http_only=True,
        production=False,
    )
    active = solara_integration.activate(settings)
    yield active
    solara_integration.deactivate()


@pytest.fixture
def specs() -> Iterator[dict[str, Any]]:
    with registry.isolated():

        @persisted(key="i.page")
        def page() -> int:
            return 1

        @persisted(key="i.tags")
        def tags() -> frozenset[str]:
            return frozenset()

        yield {"page": page, "tags": tags, "query": persisted_family("i:{uid}:query", type=str, default="")}


def new_context(kernel_id: str, session_id: str) -> kernel_context.VirtualKernelContext:
    context = kernel_context.VirtualKernelContext(id=kernel_id, session_id=session_id, kernel=kernel.Kernel())
    kernel_context.contexts[kernel_id] = context
    return context


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_builtin_engine_stays_inert_and_ours_owns_the_settings(engine: Engine) -> None:
    assert server_settings.state.backend == ""
    assert solara.state.get_backend() is None
    assert server_settings.state.auto_remount is True
    assert solara_integration.engine() is engine
    assert solara_integration.activate() is engine, "activation is idempotent"


def test_restore_installs_values_before_the_first_read(engine: Engine, specs: dict[str, Any]) -> None:
    kernel_id, cookie = uuid.uuid4().hex, "cookie-1"
    first = new_context(kernel_id, cookie)
    with first:
        assert specs["page"].value == 1
        specs["page"].value = 4
        specs["tags"].value = frozenset({"a", "b"})
        specs["query"](uid=7).value = "shoes"
        assert state_generation() == 1
    wait_until(lambda: engine.state_block()["flush_ok"] >= 1 and not engine.writer.pending())
    first.close(reason="cull")  # the instance loses the kernel; the state stays for the TTL

    second = new_context(kernel_id, cookie)
    with second:
        assert specs["page"].value == 4
        assert specs["tags"].value == frozenset({"a", "b"})
        assert specs["query"](uid=7).value == "shoes"
        assert state_generation() == 2
    manager = second.state_persistence
    assert manager.last_restore == {"status": "success", "failedKey": None, "cause": None, "nFields": 3}
    assert manager.recovery_failed is False
    second.close(reason="page-close")
    assert engine.backend.peek_generation(kernel_id) is None, "a genuine tab close deletes"


def test_another_session_cookie_restores_nothing(engine: Engine, specs: dict[str, Any]) -> None:
    kernel_id = uuid.uuid4().hex
    owner = new_context(kernel_id, "owner")
    with owner:
        specs["page"].value = 9
    wait_until(lambda: engine.state_block()["flush_ok"] >= 1 and not engine.writer.pending())
    owner.close(reason="cull")
    thief = new_context(kernel_id, "thief")
    with thief:
        assert specs["page"].value == 1
        assert state_generation() is None, "no write rights on another session's state"
        specs["page"].value = 666
    thief.close(reason="page-close")
    assert engine.backend.peek_generation(kernel_id) is not None, "the stranger could not delete it"


def test_server_shutdown_drains_every_kernel_once(
    engine: Engine, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    engine.writer.stop()  # nothing is written behind our back: only the drain may write
    contexts = [new_context(uuid.uuid4().hex, "cookie") for _ in range(20)]
    for number, context in enumerate(contexts):
        with context:
            specs["page"].value = number + 100
    with caplog.at_level(logging.INFO, logger="solara.state"):
        for context in contexts:
            context.close(reason="server-shutdown")
    assert engine.state_block()["flush_ok"] == 20
    closes = [line for line in caplog.messages if line.startswith("close ")]
    assert len(closes) == 20 and all("reason=server-shutdown deleted=false" in line for line in closes)


def test_resourcez_carries_our_state_block(engine: Engine, specs: dict[str, Any]) -> None:
    context = new_context(uuid.uuid4().hex, "cookie")
    with context:
        specs["page"].value = 2
    wait_until(lambda: engine.state_block()["flush_ok"] >= 1)
    client = TestClient(solara.server.starlette.app)
    state = client.get("/resourcez").json()["state"]
    assert state["status"] == "healthy"
    assert state["flush_ok"] >= 1
    assert state["sync_by_key"][0]["key"] == "i.page"
    verbose = client.get("/resourcez?verbose=1").json()["state"]
    assert "sync_oversize_dropped" in verbose
    context.close(reason="page-close")


def test_a_solara_outside_the_tested_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="outside the range"):
        solara_integration.check_solara_version("1.99.0")
    solara_integration.check_solara_version(solara.__version__)
