"""The Solara seams, in process: real kernel contexts, our engine in their persistence slot.

Servers, proxies and a browser are exercised by the fleet tests; these pin the contract with
Solara's internals (restore before first read, change listener, close reasons, /resourcez,
one engine only) quickly and deterministically.
"""

from __future__ import annotations

import logging
import secrets
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import solara
import solara.server.settings as server_settings
import solara.server.starlette  # a Solara server process: reactives scope per kernel
import solara.state
from solara.server import kernel, kernel_context
from starlette.testclient import TestClient
from support import wait_until

from solara_persisted import solara_integration, state_generation
from solara_persisted.address import session_address
from solara_persisted.backends.redis import RedisBackend
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
    for context in list(kernel_context.contexts.values()):
        if isinstance(context.state_persistence, solara_integration.KernelPersistence):
            context.close(reason="cull")
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


def written_context(engine: Engine, specs: dict[str, Any], kernel_id: str) -> kernel_context.VirtualKernelContext:
    """A kernel of cookie "cookie" whose page set i.page to 3, written."""
    context = new_context(kernel_id, "cookie")
    with context:
        specs["page"].value = 3
    wait_until(lambda: engine.state_block()["flush_ok"] == 1 and not engine.writer.pending())
    return context


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
        generation = state_generation()
        assert generation
    wait_until(lambda: engine.state_block()["flush_ok"] >= 1 and not engine.writer.pending())
    first.close(reason="cull")  # the instance loses the kernel; the state stays for the TTL

    second = new_context(kernel_id, cookie)
    with second:
        assert specs["page"].value == 4
        assert specs["tags"].value == frozenset({"a", "b"})
        assert specs["query"](uid=7).value == "shoes"
        assert state_generation() > generation  # a takeover: at least the connection's time
    manager = second.state_persistence
    assert manager.last_restore == {"status": "success", "failedKey": None, "cause": None, "nFields": 3}
    assert manager.recovery_failed is False
    second.close(reason="page-close")
    assert engine.backend.peek_generation(session_address(cookie, kernel_id)) is None, "a genuine tab close deletes"


def test_another_session_cookie_restores_nothing(engine: Engine, specs: dict[str, Any]) -> None:
    kernel_id = uuid.uuid4().hex
    owner = new_context(kernel_id, "owner")
    with owner:
        specs["page"].value = 9
    wait_until(lambda: engine.state_block()["flush_ok"] >= 1 and not engine.writer.pending())
    owner.close(reason="cull")
    owner_generation = engine.backend.peek_generation(session_address("owner", kernel_id))
    thief = new_context(kernel_id, "thief")
    with thief:
        assert specs["page"].value == 1
        specs["page"].value = 666  # written to the thief's own hash, not the owner's
    thief.close(reason="page-close")
    assert engine.backend.peek_generation(session_address("owner", kernel_id)) == owner_generation
    again = new_context(kernel_id, "owner")
    with again:
        assert specs["page"].value == 9, "the stranger neither read, wrote nor deleted the owner's state"


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


def test_a_bailout_storm_soft_remounts_instead_of_dialogs(engine: Engine, specs: dict[str, Any]) -> None:
    # Another half of the fleet signs with a secret this instance lacks: every restore bails out.
    other = Engine(attrs.evolve(engine.settings, secret_keys=(secrets.token_urlsafe(32),)), backend=engine.backend)
    kernel_ids = [uuid.uuid4().hex for _ in range(12)]
    for kernel_id in kernel_ids:
        restored = other.restore(kernel_id, "cookie")
        session = other.open_session(kernel_id, restored, lambda keys: dict.fromkeys(keys, 5))
        other.mark_dirty(session, "i.page")
    other.drain(5.0)
    dialogs = []
    for kernel_id in kernel_ids:
        manager = new_context(kernel_id, "cookie").state_persistence
        assert manager.on_client_message(), "the client's first message runs the takeover"
        assert manager.last_restore["status"] == "bailout" and manager.last_restore["cause"] == "hmac"
        dialogs.append(manager.recovery_failed)
    assert dialogs[:9] == [True] * 9, "a lone bail-out shows the refresh dialog"
    assert dialogs[-1] is False, "a storm re-mounts fresh instead"
    assert engine.state_block()["restore_bailout"] == 12


def test_live_kernels_per_session_are_capped(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_settings.kernel, "max_per_session", 2)
    for _ in range(2):
        new_context(uuid.uuid4().hex, "one-cookie")
    with pytest.raises(RuntimeError, match="too many live kernels"):
        new_context(uuid.uuid4().hex, "one-cookie")
    new_context(uuid.uuid4().hex, "another-cookie")


def test_a_tab_close_from_another_session_cannot_delete_state(engine: Engine, specs: dict[str, Any]) -> None:
    kernel_id = uuid.uuid4().hex
    context = new_context(kernel_id, "owner-cookie")
    context.page_status["page-1"] = kernel_context.PageStatus.CONNECTED
    with context:
        specs["page"].value = 3
    wait_until(lambda: engine.state_block()["flush_ok"] >= 1)
    client = TestClient(solara.server.starlette.app)
    client.cookies.set("solara-session-id", "attacker")
    client.post(f"/_solara/api/close/{kernel_id}?session_id=page-1")
    assert not context.closed_event.is_set()
    address = session_address("owner-cookie", kernel_id)
    assert engine.backend.peek_generation(address) is not None
    owner = TestClient(solara.server.starlette.app)
    owner.cookies.set("solara-session-id", "owner-cookie")
    owner.post(f"/_solara/api/close/{kernel_id}?session_id=page-1")
    wait_until(lambda: context.closed_event.is_set())
    assert engine.backend.peek_generation(address) is None, "the owner's tab close deletes"


def test_the_development_evict_route_drops_a_kernel_and_leaves_its_state(
    redis_url: str, specs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_settings.main, "mode", "development")
    settings = Settings(
        backend="redis",
        url=redis_url,
        prefix=f"v{uuid.uuid4().hex[:6]}:",
        secret_keys=(secrets.token_urlsafe(32),),
        flush_debounce=60.0,  # only the eviction's final flush can write
        session_http_only=True,
        production=False,
        test_eviction=True,
    )
    active = solara_integration.activate(settings)
    try:
        kernel_id = uuid.uuid4().hex
        context = new_context(kernel_id, "owner")
        with context:
            specs["page"].value = 8
        client = TestClient(solara.server.starlette.app)
        client.cookies.set("solara-session-id", "someone-else")
        assert client.post(f"/_solara/api/evict/{kernel_id}").status_code == 403
        client.cookies.set("solara-session-id", "owner")
        assert client.post(f"/_solara/api/evict/{kernel_id}").status_code == 200
        assert context.closed_event.is_set()
        restored = active.restore(kernel_id, "owner")
        assert restored.values == {"i.page": 8}, "evicted: flushed and left for the reconnect"
    finally:
        solara_integration.deactivate()


def test_simulated_failover_is_refused_unless_enabled(engine: Engine) -> None:
    context = new_context(uuid.uuid4().hex, "cookie")
    with context, pytest.raises(ConfigError, match="SOLARA_STATE_TEST_EVICTION"):
        solara_integration.simulate_failover()


def test_status_reads_and_a_close_never_start_a_takeover(engine: Engine, specs: dict[str, Any]) -> None:
    kernel_id = uuid.uuid4().hex
    owner = new_context(kernel_id, "owner")
    with owner:
        specs["page"].value = 5
    wait_until(lambda: engine.state_block()["flush_ok"] >= 1 and not engine.writer.pending())
    address = session_address("owner", kernel_id)
    generation = engine.backend.peek_generation(address)
    attempts = engine.state_block()["restore_attempts"]
    # The same session opens the kernel elsewhere (a reconnect that never sends a message), and
    # Solara reads its status and closes it: nothing may take the owner's state over.
    ghost = new_context(uuid.uuid4().hex, "owner")
    ghost.id = kernel_id
    manager = solara_integration.KernelPersistence(engine, ghost)
    assert (manager.generation, manager.recovery_failed) == (0, False)
    assert manager.last_restore["status"] == "miss"
    ghost.close_reason = "page-close"
    manager.close()
    assert engine.state_block()["restore_attempts"] == attempts
    assert engine.backend.peek_generation(address) == generation, "the owner's live kernel keeps its rights"
    with owner:
        specs["page"].value = 6
    wait_until(lambda: engine.state_block()["flush_ok"] >= 2 and not engine.writer.pending())
    assert engine.state_block()["flush_rejected"] == 0


def test_a_refused_kernel_id_is_a_disabled_kernel_not_an_exception(engine: Engine, specs: dict[str, Any]) -> None:
    context = new_context("x" * 300, "cookie")
    manager = context.state_persistence
    assert manager.on_client_message()
    assert manager.disabled and manager.generation == 0
    with context:
        assert specs["page"].value == 1
        specs["page"].value = 2  # served, never written
    assert engine.state_block()["flush_ok"] == 0


def test_a_fenced_out_kernel_closes_as_superseded_and_writes_nothing(
    engine: Engine, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kernel_id = uuid.uuid4().hex
    stale = written_context(engine, specs, kernel_id)
    # Another instance takes the kernel over (the browser reconnected there) and writes 5.
    other = Engine(engine.settings, backend=engine.backend)
    restored = other.restore(kernel_id, "cookie")
    assert dict(restored.values) == {"i.page": 3}
    session = other.open_session(kernel_id, restored, lambda keys: dict.fromkeys(keys, 5))
    other.mark_dirty(session, "i.page")
    assert other.drain(5.0) == 0
    with caplog.at_level(logging.INFO, logger="solara.state"):
        with stale:
            specs["page"].value = 4  # this instance wakes up with a change of its own
        wait_until(lambda: stale.closed_event.is_set(), "the stale kernel closed")
    assert any("flush result=rejected" in line for line in caplog.messages)
    assert any("close reason=superseded" in line and "deleted=false" in line for line in caplog.messages)
    assert engine.state_block()["flush_ok"] == 1
    again = other.restore(kernel_id, "cookie")
    assert dict(again.values) == {"i.page": 5}


def test_a_reconnect_to_a_live_kernel_holds_its_session_over_a_takeover_that_wrote_nothing(
    engine: Engine, specs: dict[str, Any]
) -> None:
    """Solara's ``new_epoch``: another instance took the kernel over, but its page never reached
    the user, who came back here. This kernel shows what that takeover read, and more."""
    kernel_id = uuid.uuid4().hex
    live = written_context(engine, specs, kernel_id)
    other = Engine(engine.settings, backend=engine.backend)
    taken = other.restore(kernel_id, "cookie")
    assert dict(taken.values) == {"i.page": 3}
    live.state_flush_worker.new_epoch()  # the reconnect: no exception, the page is served
    manager = live.state_persistence
    assert manager.generation > taken.generation
    with live:
        specs["page"].value = 4
    wait_until(lambda: engine.state_block()["flush_ok"] == 2 and not engine.writer.pending())
    assert engine.state_block()["flush_rejected"] == 0 and not live.closed_event.is_set()
    assert dict(other.restore(kernel_id, "cookie").values) == {"i.page": 4}


def test_a_reconnect_to_a_copy_another_instance_wrote_since_is_closed_before_it_is_served(
    engine: Engine, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kernel_id = uuid.uuid4().hex
    stale = written_context(engine, specs, kernel_id)
    other = Engine(engine.settings, backend=engine.backend)
    restored = other.restore(kernel_id, "cookie")
    session = other.open_session(kernel_id, restored, lambda keys: dict.fromkeys(keys, 5))
    other.mark_dirty(session, "i.page")
    assert other.drain(5.0) == 0
    with caplog.at_level(logging.INFO, logger="solara.state"), pytest.raises(RuntimeError, match="held elsewhere"):
        stale.state_flush_worker.new_epoch()
    assert stale.closed_event.is_set()
    assert any("reconnect to kernel=" in line and "another instance wrote" in line for line in caplog.messages)
    assert any("close reason=superseded" in line for line in caplog.messages)
    assert dict(other.restore(kernel_id, "cookie").values) == {"i.page": 5}


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({"Origin": "https://evil.example"}, "?session_id=page-1", 403),
        ({"Sec-Fetch-Site": "cross-site"}, "?session_id=page-1", 403),
        ({"Sec-Fetch-Site": "same-site"}, "?session_id=page-1", 403),
        ({}, "", 400),
        ({}, "?session_id=", 400),
    ],
)
def test_the_tab_close_route_refuses_cross_site_and_malformed_requests(
    engine: Engine, specs: dict[str, Any], headers: dict[str, str], query: str, status: int
) -> None:
    kernel_id = uuid.uuid4().hex
    context = new_context(kernel_id, "owner-cookie")
    context.page_status["page-1"] = kernel_context.PageStatus.CONNECTED
    with context:
        specs["page"].value = 3
    wait_until(lambda: engine.state_block()["flush_ok"] >= 1)
    client = TestClient(solara.server.starlette.app)
    client.cookies.set("solara-session-id", "owner-cookie")
    response = client.post(f"/_solara/api/close/{kernel_id}{query}", headers=headers)
    assert response.status_code == status
    assert not context.closed_event.is_set()
    assert engine.backend.peek_generation(session_address("owner-cookie", kernel_id)) is not None
    same_origin = client.post(
        f"/_solara/api/close/{kernel_id}?session_id=page-1", headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert same_origin.status_code == 200


class _HeldTakeovers(RedisBackend):
    """The Redis backend with takeovers held at a gate: a slow Redis, deterministically."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.entered = threading.Event()
        self.release = threading.Event()

    def takeover(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.release.wait(10), "the test never released the takeover"
        return super().takeover(*args, **kwargs)


def test_a_close_that_races_the_restore_writes_nothing_afterwards(redis_url: str, specs: dict[str, Any]) -> None:
    settings = Settings(
        backend="redis",
        url=redis_url,
        prefix=f"r{uuid.uuid4().hex[:6]}:",
        secret_keys=(secrets.token_urlsafe(32),),
        flush_debounce=DEBOUNCE,
        session_http_only=True,
    )
    backend = _HeldTakeovers(settings)
    active = Engine(settings, backend=backend)
    kernel_id = uuid.uuid4().hex
    context = kernel_context.VirtualKernelContext(id=kernel_id, session_id="cookie", kernel=kernel.Kernel())
    manager = solara_integration.KernelPersistence(active, context)
    context.state_persistence = manager
    restoring = threading.Thread(target=manager.on_client_message)
    restoring.start()
    assert backend.entered.wait(10)
    context.close_reason = "page-close"
    manager.close()  # the page went away while its takeover waits on the backend: no I/O, no session
    backend.release.set()
    restoring.join(10)
    assert manager.last_restore["status"] == "miss"
    found, _ = manager.pop_restored("solara_persisted:i.page", specs["page"]._storage)
    manager._changed("i.page", 5)  # a late change event of the closed kernel
    assert active.writer.pending() == 0 and active.drain(1.0) == 0
    assert backend.peek_generation(session_address("cookie", kernel_id)) is None, "nothing written for a closed kernel"
    assert not found
    backend.close()


def test_checkpoint_writes_now_and_reports_the_acknowledgement(engine: Engine, specs: dict[str, Any]) -> None:
    slow = Engine(attrs.evolve(engine.settings, flush_debounce=60.0), backend=engine.backend)
    slow.start()
    context = new_context(uuid.uuid4().hex, "cookie")
    manager = solara_integration.KernelPersistence(slow, context)
    context.state_persistence = context.state_flush_worker = manager  # Solara closes through both slots
    with context:
        assert solara_integration.checkpoint(), "nothing changed: nothing to wait for"
        specs["page"].value = 7  # the debounce is a minute: only a checkpoint writes it now
        assert slow.writer.pending() == 1
        assert solara_integration.checkpoint(timeout=5.0)
    assert slow.writer.pending() == 0 and slow.state_block()["flush_ok"] == 1
    assert dict(engine.restore(context.id, "cookie").values) == {"i.page": 7}
    with context:
        specs["page"].value = 8  # another instance took over meanwhile: this copy is fenced out
        assert solara_integration.checkpoint(timeout=5.0) is False
    context.close(reason="cull")
    slow.close()
    assert solara_integration.checkpoint() is False, "outside a kernel"


def test_values_set_in_one_event_are_written_together(engine: Engine, specs: dict[str, Any]) -> None:
    """The writer never stores half of an event: while a handler runs (Solara holds the kernel's
    lock for each message), a debounce that expires mid-event waits for the event to end."""
    kernel_id, cookie = uuid.uuid4().hex, "cookie-event"
    context = new_context(kernel_id, cookie)
    with context:
        assert specs["page"].value == 1  # restored (a miss) before the event
    before = engine.state_block()["flush_ok"]
    with context.lock, context:  # one event: two values, with many debounce windows in between
        specs["page"].value = 4
        threading.Event().wait(DEBOUNCE * 10)
        assert engine.state_block()["flush_ok"] == before, "the writer stored the event's first half"
        specs["tags"].value = frozenset({"x"})
    wait_until(lambda: engine.state_block()["flush_ok"] > before and not engine.writer.pending())
    context.close(reason="cull")

    again = new_context(kernel_id, cookie)
    with again:
        assert (specs["page"].value, specs["tags"].value) == (4, frozenset({"x"}))
    again.close(reason="page-close")


def test_an_event_between_a_batch_and_its_snapshot_is_written_whole(engine: Engine, specs: dict[str, Any]) -> None:
    """The writer names a batch's keys before it takes the kernel's lock to read them: a message
    handled in between set a named key and another. The write holds the whole event (chaos seed
    1010), read under the lock the handler held."""
    slow = Engine(attrs.evolve(engine.settings, flush_debounce=60.0), backend=engine.backend)
    slow.start()  # a minute's debounce: only the checkpoint below writes
    kernel_id = uuid.uuid4().hex
    context = new_context(kernel_id, "cookie")
    manager = solara_integration.KernelPersistence(slow, context)
    context.state_persistence = context.state_flush_worker = manager
    with context.lock, context:
        specs["page"].value = 4
    session = manager._session
    assert session is not None
    snapshot = session.snapshot

    def late(keys: Any) -> Any:
        session.snapshot = snapshot
        with context.lock, context:  # the next message's handler, before the snapshot takes the lock
            specs["page"].value = 5
            specs["tags"].value = frozenset({"x"})
        return snapshot(keys)

    session.snapshot = late
    with context:
        assert solara_integration.checkpoint(timeout=5.0)
    assert dict(engine.restore(kernel_id, "cookie").values) == {"i.page": 5, "i.tags": frozenset({"x"})}
    context.close(reason="cull")
    slow.close()


def test_a_snapshot_reads_a_cleared_reactive_the_long_way(engine: Engine, specs: dict[str, Any]) -> None:
    """The writer reads values straight from the kernel's user_dicts; one dropped from there since
    (Solara's ``clear()``, as ``use_task`` does on unmount) is read through the reactive, which sets
    it up again, so a write of every key (a claim, a re-assertion) still has all of them."""
    context = new_context(uuid.uuid4().hex, "cookie")
    with context:
        specs["page"].value = 4
        specs["tags"].value = frozenset({"x"})
    manager = context.state_persistence
    assert manager._snapshot(["i.page", "i.tags"]) == {"i.page": 4, "i.tags": frozenset({"x"})}
    with context:
        specs["page"]._storage.clear()
    assert manager._snapshot(["i.page", "i.tags", "i.unknown"]) == {"i.page": 1, "i.tags": frozenset({"x"})}
    with context:
        assert specs["page"].value == 1
    context.close(reason="cull")


def test_values_verified_under_a_retiring_key_are_signed_again_without_a_change(
    engine: Engine, specs: dict[str, Any]
) -> None:
    """After a key rotation every reload refreshes a session's TTL, so its old-key envelopes would
    never age out: a restore that verified any under a non-primary key writes them all again at
    once, also those whose reactive the page has not read yet."""
    old_secret = secrets.token_urlsafe(32)

    def engine_with(*keys: str) -> Engine:
        other = Engine(attrs.evolve(engine.settings, secret_keys=keys), backend=engine.backend)
        other.start()
        return other

    kernel_id = uuid.uuid4().hex
    old = engine_with(old_secret)
    context = new_context(kernel_id, "cookie")
    context.state_persistence = context.state_flush_worker = solara_integration.KernelPersistence(old, context)
    with context:
        specs["page"].value = 3
        specs["tags"].value = frozenset({"x"})
    wait_until(lambda: old.state_block()["flush_ok"] == 1 and not old.writer.pending())
    context.close(reason="cull")
    old.close()

    rolled = engine_with(*engine.settings.secret_keys, old_secret)
    again = new_context(kernel_id, "cookie")
    again.state_persistence = again.state_flush_worker = solara_integration.KernelPersistence(rolled, again)
    with again:
        assert specs["page"].value == 3  # i.tags is never read on this page
    wait_until(lambda: rolled.state_block()["flush_ok"] == 1, "the re-sign without a change")
    again.close(reason="cull")
    rolled.close()
    new_only = engine_with(*engine.settings.secret_keys).restore(kernel_id, "cookie")
    assert (new_only.result, dict(new_only.values)) == ("success", {"i.page": 3, "i.tags": frozenset({"x"})})


class _FullOnce(RedisBackend):
    """The Redis backend as a full Redis answers a takeover's claim: refused, the miss unclaimed."""

    def takeover(self, *args: Any, **kwargs: Any) -> Any:
        return attrs.evolve(super().takeover(*args, **{**kwargs, "claim": 0}), generation=0)


def test_a_page_whose_claim_redis_refused_claims_its_session_once_redis_takes_it(
    engine: Engine, specs: dict[str, Any]
) -> None:
    """A miss while Redis was full claimed nothing: an instance paused before its first write
    could bring back what this page never showed. The page's writer claims the session at once,
    without waiting for a change."""
    full = Engine(engine.settings, backend=_FullOnce(engine.settings))
    full.start()
    kernel_id = uuid.uuid4().hex
    context = new_context(kernel_id, "cookie")
    context.page_connect("page")  # as the websocket whose first message takes the session over
    manager = solara_integration.KernelPersistence(full, context)
    context.state_persistence = manager
    assert manager.on_client_message()
    assert manager.last_restore["status"] == "miss"
    address = session_address("cookie", kernel_id)
    wait_until(lambda: engine.backend.peek_generation(address) is not None, "the writer's claim")
    assert engine.backend.peek_generation(address) == manager.generation
    full.close()
