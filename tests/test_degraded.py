"""Degraded mode against a real redis-server that is stopped and started mid-session."""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_redis import factories
from pytest_redis.executor import RedisExecutor
from support import wait_until

from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.errors import SnapshotBusy
from solara_persisted.spec import persisted, registry

# A server of its own: this module stops it, which must not disturb the shared one.
outage_redis = factories.redis_proc(executable=shutil.which("redis-server") or "redis-server", port=None)


@pytest.fixture
def page() -> Iterator[Any]:
    with registry.isolated():

        @persisted(key="d.page")
        def page() -> int:
            return 0

        yield page


def outage_engine(outage_redis: RedisExecutor, **changes: Any) -> Engine:
    """An engine on this module's own redis-server: short debounce and connect timeout."""
    settings = Settings(
        backend="redis",
        url=f"redis://{outage_redis.host}:{outage_redis.port}/0",
        secret_keys=(secrets.token_urlsafe(32),),
        flush_debounce=0.05,
        connect_timeout=0.2,
        session_http_only=True,
        **changes,
    )
    return Engine(settings)


def test_outage_opens_the_breaker_and_recovery_writes_everything(
    outage_redis: RedisExecutor, page: Any
) -> None:
    engine = outage_engine(outage_redis, breaker_failures=2, breaker_window=0.5)
    engine.start()
    kernel_id, cookie = uuid.uuid4().hex, "cookie"
    values = {"d.page": 1}
    restored = engine.restore(kernel_id, cookie)
    session = engine.open_session(kernel_id, restored, lambda keys: {k: values[k] for k in keys})
    engine.mark_dirty(session, "d.page")
    wait_until(lambda: engine.state_block()["flush_ok"] == 1)

    outage_redis.stop()
    try:
        values["d.page"] = 2
        engine.mark_dirty(session, "d.page")  # the interaction path only marks; it never waits
        wait_until(lambda: engine.state_block()["circuit_breaker"] == "open")
        block = engine.state_block()
        assert block["status"] == "degraded"
        assert block["flush_failures"] >= 2
        assert block["backend_last_error"]
        attempts = block["restore_attempts"]
        skipped = engine.restore(uuid.uuid4().hex, "other")
        assert skipped.result == "skipped"
        assert engine.state_block()["restore_attempts"] == attempts, "an open breaker skips the takeover read"
        values["d.page"] = 3
        engine.mark_dirty(session, "d.page")
    finally:
        outage_redis.start()

    wait_until(lambda: engine.state_block()["status"] == "healthy" and engine.writer.pending() == 0)
    assert engine.state_block()["breaker_transitions"] >= 3  # open, half_open, closed
    fresh = Engine(engine.settings)
    assert fresh.restore(kernel_id, cookie).values == {"d.page": 3}


def test_a_backend_unreachable_at_start_up_is_degraded_at_once(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = Settings(
        backend="redis",
        url=f"redis://127.0.0.1:{closed}/0",
        secret_keys=(secrets.token_urlsafe(32),),
        connect_timeout=0.2,
        session_http_only=True,
    )
    engine = Engine(settings)
    with caplog.at_level(logging.WARNING, logger="solara.state"):
        engine.start()
    try:
        block = engine.state_block()
        assert (block["status"], block["circuit_breaker"]) == ("degraded", "closed")
        assert block["backend_last_error"] and any("unreachable at start-up" in m for m in caplog.messages)
    finally:
        engine.close()


def quick_breaker_engine() -> Engine:
    """An in-memory engine whose breaker opens at one failure and probes again 0.2 s later; its
    writer thread is not started, so each test drives the writes itself."""
    return Engine(
        Settings(
            backend="memory",
            secret_keys=(secrets.token_urlsafe(32),),
            flush_debounce=0.01,
            breaker_failures=1,
            breaker_window=0.2,
            session_http_only=True,
        )
    )


def test_a_batch_that_sends_nothing_leaves_the_half_open_probe_to_the_next_write(page: Any) -> None:
    """A write batch with nothing to send (its page mid-event) took the half-open probe and never
    reported back: every session on the instance waited another window (chaos seed 731)."""
    engine = quick_breaker_engine()
    restored = engine.restore(uuid.uuid4().hex, "cookie")

    def busy(keys: Any) -> dict[str, Any]:
        raise SnapshotBusy("mid-event")

    session = engine.open_session(uuid.uuid4().hex, restored, busy)
    engine.mark_dirty(session, "d.page")
    engine.breaker.failure("down")
    wait_until(lambda: engine.breaker.allow() and engine.breaker.state == "half_open")
    engine.breaker.give_back()  # the probe this test took to see the window end
    assert not engine.writer.flush_now(session, timeout=1.0)  # busy: nothing sent
    assert engine.breaker.allow()  # the probe is free for the next caller at once
    assert not engine.breaker.allow()


def test_the_first_write_after_an_outage_brings_every_waiting_retry_forward(page: Any) -> None:
    """Sessions that failed during an outage waited out their retry delay even after the breaker
    closed: a second's more loss window for no reason (chaos seed 731)."""
    engine = quick_breaker_engine()  # no writer thread: this test drives each write itself
    values = {"d.page": 1}
    waiting, probing = (
        engine.open_session(kernel, engine.restore(kernel, "cookie"), lambda keys: {k: values[k] for k in keys})
        for kernel in (uuid.uuid4().hex, uuid.uuid4().hex)
    )
    for session in (waiting, probing):
        engine.mark_dirty(session, "d.page")
    engine.breaker.failure("down")
    assert not engine.writer.flush_now(waiting, timeout=1.0)  # refused by the open breaker: retried later
    assert waiting.due is not None and waiting.due - time.monotonic() > 0.5
    wait_until(lambda: engine.breaker.allow() and engine.breaker.state == "half_open")
    engine.breaker.give_back()
    assert engine.writer.flush_now(probing, timeout=1.0)  # the probe: the backend answers
    assert engine.breaker.state == "closed"
    assert waiting.due is not None and waiting.due <= time.monotonic()  # due now, not a second later


def test_a_failure_outside_redis_pys_errors_is_retried_and_the_writer_lives_on(
    outage_redis: RedisExecutor, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py raises AttributeError when another thread closes a connection under a call (seen
    in CI: a backend closed while a writer claimed a session). That is a backend failure: the
    writer's thread retries it, where before it died and no session of the process was written again."""
    from redis.connection import AbstractConnection

    from solara_persisted.errors import BackendError

    engine = outage_engine(outage_redis)
    engine.start()
    kernel_id, values = uuid.uuid4().hex, {"d.page": 1}
    session = engine.open_session(kernel_id, engine.restore(kernel_id, "cookie"), lambda keys: {k: values[k] for k in keys})
    read_response = AbstractConnection.read_response

    def closed_under_the_call(self: AbstractConnection, *args: Any, **kwargs: Any) -> Any:
        self.disconnect()  # what the other thread's close() did; the reply is never read
        raise AttributeError("'NoneType' object has no attribute 'readline'")

    monkeypatch.setattr(AbstractConnection, "read_response", closed_under_the_call)
    engine.mark_dirty(session, "d.page")
    wait_until(lambda: engine.state_block()["flush_failures"] >= 1, "the failed write")
    with pytest.raises(BackendError, match=r"redis ping .* AttributeError"):
        engine.backend.ping()
    monkeypatch.setattr(AbstractConnection, "read_response", read_response)
    wait_until(lambda: engine.state_block()["flush_ok"] == 1, "the write retried")
    assert engine.writer._thread is not None and engine.writer._thread.is_alive()
    engine.close()
