"""A kernel id is not a credential, and a fenced instance never writes again (several engines, one store).

The kernel id is public; the session cookie is the credential. These tests play an attacker and
a scheduler against engines sharing one backend (in-process memory and a real redis-server):
two cookies on one kernel id in every order, a squatter, a paused instance that wakes up after
another took over, a store someone can write to (rolled-back, removed and copied fields), and
sessions over their budget.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
import uuid
from typing import Any

import attrs
import pytest
import redis
from engine_kit import (  # noqa: F401
    Cart,
    Kernel,
    backend_fixture,
    make_engine,
    settings_fixture,
    specs_fixture,
)
from support import wait_until

from solara_persisted.address import session_address
from solara_persisted.backends.base import Backend, FlushRequest, Meta, SessionBudget, tag_digest
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.envelope import Codec, envelope_tag

STEPS = ("open owner", "open stranger", "write owner", "write stranger")


def orders() -> list[tuple[str, ...]]:
    """Every order of the four steps in which each side opens before it writes."""
    return [
        order
        for order in itertools.permutations(STEPS)
        if order.index("open owner") < order.index("write owner")
        and order.index("open stranger") < order.index("write stranger")
    ]


def flushed(engine: Engine) -> int:
    assert engine.drain(5.0) == 0
    return engine.state_block()["flush_ok"]


def holder(settings: Settings, backend: Backend, kernel_id: str, cookie: str) -> Kernel:
    """The instance holding the session, with one change written (its writer thread is stopped)."""
    kernel = Kernel(make_engine(settings, backend), kernel_id, cookie)
    kernel.set("t.page", 1)
    assert flushed(kernel.engine) == 1
    return kernel


@pytest.mark.parametrize("order", orders(), ids=lambda order: ",".join(step.split()[0][0] + step.split()[1][0] for step in order))
def test_two_cookies_on_one_kernel_id_never_share_state_in_any_order(
    settings: Settings, backend: Backend, specs: dict[str, Any], order: tuple[str, ...]
) -> None:
    kernel_id = str(uuid.uuid4())
    cookies = {"owner": secrets.token_urlsafe(16), "stranger": secrets.token_urlsafe(16)}
    values = {"owner": 1, "stranger": 666}
    engines = {"owner": make_engine(settings, backend), "stranger": make_engine(settings, backend)}
    kernels: dict[str, Kernel] = {}
    for step in order:
        verb, who = step.split()
        if verb == "open":
            kernels[who] = Kernel(engines[who], kernel_id, cookies[who])
            assert kernels[who].restored.result == "miss"
        else:
            kernels[who].set("t.page", values[who])
            assert engines[who].drain(5.0) == 0
    for who, engine in engines.items():
        assert engine.state_block()["flush_rejected"] == 0, f"the {who} was fenced out"
    assert kernels["owner"].address != kernels["stranger"].address
    for who in ("owner", "stranger"):
        restored = make_engine(settings, backend).restore(kernel_id, cookies[who])
        assert (restored.result, dict(restored.values)) == ("success", {"t.page": values[who]}), who


def test_a_squatter_who_writes_first_never_locks_the_owner_out(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, owner_cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    squatter = Kernel(make_engine(settings, backend), kernel_id, "squatter-cookie")
    squatter.set("t.page", 666)
    squatter.set("t.cart", Cart(("stolen",)))
    assert flushed(squatter.engine) == 1
    owner_engine = make_engine(settings, backend)
    owner = Kernel(owner_engine, kernel_id, owner_cookie)
    assert (owner.restored.result, dict(owner.restored.values)) == ("miss", {})
    owner.set("t.page", 7)
    assert flushed(owner_engine) == 1 and owner_engine.state_block()["flush_rejected"] == 0
    again = make_engine(settings, backend).restore(kernel_id, owner_cookie)
    assert dict(again.values) == {"t.page": 7}


def test_the_hash_name_holds_neither_kernel_id_nor_cookie(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    kernel = Kernel(make_engine(settings, backend), kernel_id, cookie)
    assert kernel_id not in kernel.address and cookie not in kernel.address
    assert len(kernel.address) == 22
    assert session_address(cookie, kernel_id) == kernel.address, "the address is stable (no secret in it)"
    rotated = make_engine(settings, backend, secret_keys=(secrets.token_urlsafe(32), *settings.secret_keys))
    assert Kernel(rotated, kernel_id, cookie).address == kernel.address, "rotation keeps the address"


def test_a_fenced_instance_never_writes_its_stale_values(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    first = Kernel(make_engine(settings, backend), kernel_id, cookie)
    first.set("t.page", 3)
    assert flushed(first.engine) == 1
    # A is paused with 3 -> 4 pending; the browser reconnects to B, which restores 3.
    a = Kernel(make_engine(settings, backend, flush_debounce=60.0), kernel_id, cookie)
    a.set("t.page", 4)
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)
    assert dict(b.restored.values) == {"t.page": 3}
    b.set("t.page", 5)
    assert flushed(b.engine) == 1
    rejected: list[Any] = []
    a.session.on_rejected = rejected.append
    with caplog.at_level(logging.INFO, logger="solara.state"):
        assert a.engine.drain(5.0) == 0  # A wakes up: its write of 4 is refused
    assert rejected == [a.session] and a.session.stale
    assert any("flush result=rejected" in line for line in caplog.messages)
    a.set("t.page", 6)  # and later changes on A are never written either
    a.engine.close_session(a.session, "page-close")  # nor does a close write or delete
    assert a.engine.state_block()["flush_ok"] == 0
    c = make_engine(settings, backend).restore(kernel_id, cookie)
    assert dict(c.values) == {"t.page": 5}, "the newer value survives the stale instance"


def test_a_takeover_that_finds_nothing_still_fences_the_previous_holder(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = Kernel(make_engine(settings, backend, flush_debounce=60.0), kernel_id, cookie)
    a.set("t.page", 4)  # A holds a change it has not written yet, and pauses
    b = Kernel(make_engine(settings, backend, flush_debounce=60.0), kernel_id, cookie)
    assert b.restored.result == "miss"  # the reconnect lands on B, which finds nothing stored
    b.set("t.page", 5)
    assert a.engine.drain(5.0) == 0  # A wakes up first
    assert a.session.stale, "the holder from before the takeover is fenced out"
    assert b.engine.drain(5.0) == 0 and not b.session.stale
    assert dict(make_engine(settings, backend).restore(kernel_id, cookie).values) == {"t.page": 5}


def test_an_old_connection_processed_late_by_a_paused_instance_takes_nothing_over(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """The page connected to A, which froze before it read the connection's first message; the
    client gave up and reconnected to B a second later. When A wakes and reads that old message,
    its takeover must not fence B out (B's page is the live one)."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a_opened = time.time()
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)  # opened now, a second after A's
    b.set("t.page", 5)
    late = make_engine(settings, backend).restore(kernel_id, cookie, opened_at=a_opened - 1.0)
    assert (late.result, late.generation, late.cause) == ("skipped", 0, "superseded")
    assert flushed(b.engine) == 1 and not b.session.stale, "B still holds the session"
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert dict(restored.values) == {"t.page": 5}


def test_a_reconnect_to_a_live_kernel_holds_its_session_over_a_takeover_that_wrote_nothing(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """Chaos seed 920: the page's connection to A dropped; B took the session over (it read the
    state) but its page never reached the user, who came back to A's live kernel and worked on.
    A shows what B read and more, so A holds the session again and B, should it write, is fenced."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = holder(settings, backend, kernel_id, cookie)
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)
    assert dict(b.restored.values) == {"t.page": 1}
    time.sleep(0.1)  # the reconnect to A comes after B's connection, as the user moved
    assert a.reconnect()
    a.set("t.page", 2)
    assert flushed(a.engine) == 2 and not a.session.stale, "A holds the session"
    b.set("t.page", 9)
    assert b.engine.drain(5.0) == 0 and b.session.stale, "B's copy is the stale one"
    assert dict(make_engine(settings, backend).restore(kernel_id, cookie).values) == {"t.page": 2}


def test_a_reconnect_while_redis_is_unreachable_holds_the_session_before_its_next_write(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """The seed's actual schedule: Redis was full, then down, when the user came back to A."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = Kernel(make_engine(settings, backend, breaker_failures=1, breaker_window=0.2), kernel_id, cookie)
    a.set("t.page", 1)
    assert a.engine.writer.flush_now(a.session, 5.0)  # the writer thread runs on
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)
    time.sleep(0.1)
    a.engine.breaker.failure("the link to the backend is cut")
    assert a.reconnect(), "the page is served: nothing says its copy is stale"
    assert a.session.reassert, "still to do"
    a.set("t.page", 2)
    wait_until(lambda: a.engine.state_block()["flush_ok"] == 2 and not a.engine.writer.pending())
    assert not a.session.stale and not a.session.reassert
    b.set("t.page", 9)
    assert b.engine.drain(5.0) == 0 and b.session.stale
    assert dict(make_engine(settings, backend).restore(kernel_id, cookie).values) == {"t.page": 2}


class GatedBackend:
    """A backend whose batched writes wait at a gate: a write in flight for as long as a test needs."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def flush_many(self, requests: Any) -> Any:
        self.entered.set()
        assert self.gate.wait(10)
        return self._inner.flush_many(requests)


def test_a_reconnect_while_the_kernel_s_older_write_is_in_flight_loses_nothing(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """The write left with the generation from before B's takeover and is fenced out; the
    reconnect that reached A meanwhile re-asserts its hold, and the write goes again under it."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    gated = GatedBackend(backend)
    a = Kernel(make_engine(settings, gated), kernel_id, cookie)
    a.set("t.page", 1)
    assert a.engine.writer.flush_now(a.session, 5.0)
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)
    assert dict(b.restored.values) == {"t.page": 1}
    gated.gate.clear()
    gated.entered.clear()
    a.set("t.page", 2)
    assert gated.entered.wait(5), "A's write is in flight"
    answers: list[bool] = []
    reconnect = threading.Thread(target=lambda: answers.append(a.reconnect()))
    reconnect.start()
    time.sleep(0.05)  # the reconnect waits for the batch in flight
    gated.gate.set()
    reconnect.join(10)
    assert answers == [True]
    # Waits for a batch in flight, then writes what is left: nothing dirty is not nothing in flight.
    assert a.engine.writer.flush_now(a.session, 5.0)
    assert not a.session.stale and not a.session.reassert
    assert dict(make_engine(settings, backend).restore(kernel_id, cookie).values) == {"t.page": 2}


def test_a_reconnect_to_a_copy_that_another_instance_wrote_since_is_refused(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = holder(settings, backend, kernel_id, cookie)
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)
    b.set("t.page", 5)  # the user worked on B: those values are newer than A's kernel
    assert flushed(b.engine) == 1
    assert not a.reconnect() and a.session.stale
    a.set("t.page", 2)
    assert a.engine.drain(5.0) == 0 and a.engine.state_block()["flush_ok"] == 1, "A writes nothing more"
    assert dict(make_engine(settings, backend).restore(kernel_id, cookie).values) == {"t.page": 5}


def test_a_reconnect_older_than_the_connection_holding_the_session_is_refused(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """A paused instance handles a reconnect late, after the user has moved on to B."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = holder(settings, backend, kernel_id, cookie)
    reconnected = time.time()
    time.sleep(0.1)
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)
    assert not a.reconnect(opened_at=reconnected) and a.session.stale
    b.set("t.page", 3)
    assert flushed(b.engine) == 1 and not b.session.stale


def test_a_reconnect_after_an_earlier_page_claimed_the_session_away_writes_every_value_again(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """A page that started without Redis claimed the session (dropping its values) but its
    connection was older than the reconnect to A's live kernel: A's values are the state, all of them."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = Kernel(make_engine(settings, backend), kernel_id, cookie)
    a.set("t.page", 1)
    a.set("t.cart", Cart(("tea",)))
    assert a.engine.writer.flush_now(a.session, 5.0)  # the writer thread runs on
    c = Kernel(degraded_engine(settings, backend), kernel_id, cookie)
    wait_until(lambda: c.session.claimed)
    assert make_engine(settings, backend).restore(kernel_id, cookie).result == "miss"
    time.sleep(0.1)
    assert a.reconnect()
    wait_until(lambda: a.engine.state_block()["flush_ok"] == 2 and not a.engine.writer.pending())
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert (restored.result, dict(restored.values)) == ("success", {"t.page": 1, "t.cart": Cart(("tea",))})


def degraded_engine(settings: Settings, backend: Backend) -> Engine:
    """An engine whose link to the backend has just failed: its breaker is open for 0.2 s."""
    engine = make_engine(settings, backend, breaker_failures=1, breaker_window=0.2)
    engine.breaker.failure("the link to the backend is cut")
    return engine


def test_a_page_that_started_without_redis_claims_its_session_and_its_state_replaces_the_stored_one(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = Kernel(make_engine(settings, backend, flush_debounce=60.0), kernel_id, cookie)
    a.set("t.page", 1)
    a.set("t.cart", Cart(("book",)))
    assert flushed(a.engine) == 1
    a.set("t.page", 2)  # A pauses holding a change it has not written
    b = Kernel(degraded_engine(settings, backend), kernel_id, cookie)
    assert (b.restored.result, b.restored.claimed) == ("skipped", False)  # the page starts fresh
    b.set("t.page", 7)
    # The link is back: B claims the session (fencing A out) and writes what its page shows.
    wait_until(lambda: b.engine.state_block()["flush_ok"] == 1 and not b.engine.writer.pending())
    assert b.session.claimed and not b.session.stale
    assert a.engine.drain(5.0) == 0 and a.session.stale, "the holder from before the claim is fenced out"
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert (restored.result, dict(restored.values)) == ("success", {"t.page": 7}), (
        "the cart the page never showed is not mixed in"
    )


def test_a_page_that_started_without_redis_and_changed_nothing_never_brings_the_old_state_back(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """Chaos seed 969: B's page showed the session without A's values (Redis was out) and the user
    left; B claims once Redis answers, connected or not, so A's late write cannot bring back what
    B's page showed gone."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    holder(settings, backend, kernel_id, cookie)
    b = Kernel(degraded_engine(settings, backend), kernel_id, cookie)
    wait_until(lambda: b.session.claimed)
    assert backend.peek_generation(b.address) == b.session.generation
    assert make_engine(settings, backend).restore(kernel_id, cookie).result == "miss", "as the page showed it"


def test_a_page_that_started_without_redis_never_wipes_the_live_kernel_the_user_went_back_to(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """Chaos seed 920: B's page started without Redis and dropped before it showed anything; the
    user went back to the live kernel on A (a reconnect) and worked on, Redis still out for A too.
    Whichever comes first once Redis answers, B's claim (which drops the values) or A's re-assertion,
    A's reconnect is the newer connection: A ends up holding the session with every value."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = Kernel(make_engine(settings, backend, breaker_failures=1, breaker_window=0.3), kernel_id, cookie)
    a.set("t.page", 1)
    a.set("t.cart", Cart(("tea",)))
    assert a.engine.writer.flush_now(a.session, 5.0)
    b = Kernel(degraded_engine(settings, backend), kernel_id, cookie)
    assert not b.session.claimed
    time.sleep(0.05)
    a.engine.breaker.failure("A's link is cut too")
    assert a.reconnect()
    a.set("t.page", 2)
    wait_until(lambda: b.session.claimed or b.session.stale)
    wait_until(lambda: not a.session.reassert and not a.engine.writer.pending())
    assert not a.session.stale
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert dict(restored.values) == {"t.page": 2, "t.cart": Cart(("tea",))}


def test_a_page_that_started_without_redis_never_overwrites_state_signed_with_a_secret_it_lacks(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    holder(settings, backend, kernel_id, cookie)
    other = attrs.evolve(settings, secret_keys=(secrets.token_urlsafe(32),))
    b = Kernel(degraded_engine(other, backend), kernel_id, cookie)
    b.set("t.page", 7)
    wait_until(lambda: b.session.stale)
    assert b.engine.state_block()["flush_ok"] == 0
    assert dict(make_engine(settings, backend).restore(kernel_id, cookie).values) == {"t.page": 1}


def test_two_misses_of_one_session_do_not_share_write_rights(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = Kernel(make_engine(settings, backend, flush_debounce=60.0), kernel_id, cookie)
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)
    assert a.restored.result == b.restored.result == "miss"
    assert a.restored.generation != b.restored.generation
    a.set("t.page", 4)
    b.set("t.page", 5)
    assert flushed(b.engine) == 1
    assert a.engine.drain(5.0) == 0
    assert a.session.stale and a.engine.state_block()["flush_ok"] == 0
    assert dict(make_engine(settings, backend).restore(kernel_id, cookie).values) == {"t.page": 5}


def test_a_page_close_of_a_stale_copy_deletes_nothing(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = holder(settings, backend, kernel_id, cookie)
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)
    assert dict(b.restored.values) == {"t.page": 1}
    a.engine.close_session(a.session, "page-close")  # A's generation is old: the delete is fenced
    assert backend.peek_generation(b.address) == b.restored.generation


# -- the store itself is not trusted ------------------------------------------------------------


def write_two(settings: Settings, backend: Backend, kernel_id: str, cookie: str) -> Kernel:
    kernel = Kernel(make_engine(settings, backend), kernel_id, cookie)
    kernel.set("t.page", 1)
    kernel.set("t.cart", Cart(("tea",)))
    assert flushed(kernel.engine) == 1
    return kernel


def replace_fields(
    backend: Backend, address: str, engine: Engine, fields: dict[str, bytes], removed: tuple[str, ...] = ()
) -> None:
    """Write raw fields into a hash keeping its meta field as it is: what write access to Redis allows."""
    takeover = backend.takeover(address, engine.schema_tag, 60, SessionBudget())
    assert takeover.meta is not None
    meta = attrs.evolve(takeover.meta, generation=takeover.generation)
    assert backend.flush(FlushRequest(address, meta, fields, 60, removed, must_exist=True))


def test_one_field_rolled_back_to_an_older_genuine_envelope_is_detected(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    kernel = write_two(settings, backend, kernel_id, cookie)
    old = backend.takeover(kernel.address, kernel.engine.schema_tag, 60, SessionBudget()).fields[b"t.page"]
    kernel.session.generation = backend.peek_generation(kernel.address)  # the test's takeover bumped it
    kernel.set("t.page", 2)
    assert flushed(kernel.engine) == 2
    replace_fields(backend, kernel.address, kernel.engine, {"t.page": old})
    checker = make_engine(settings, backend)
    with caplog.at_level(logging.INFO, logger="solara.state"):
        restored = checker.restore(kernel_id, cookie)
    assert (restored.result, restored.cause, dict(restored.values)) == ("bailout", "manifest", {})
    assert any("restore result=bailout" in line and "cause=manifest" in line for line in caplog.messages)
    assert checker.state_block()["restore_bailout"] == 1
    assert backend.peek_generation(kernel.address) is None


def test_a_removed_field_is_detected(settings: Settings, backend: Backend, specs: dict[str, Any]) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    kernel = write_two(settings, backend, kernel_id, cookie)
    replace_fields(backend, kernel.address, kernel.engine, {}, removed=("t.cart",))
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert (restored.result, restored.cause) == ("bailout", "manifest")


def test_a_field_copied_from_another_session_is_detected(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    victim = write_two(settings, backend, kernel_id, cookie)
    attacker = write_two(settings, backend, kernel_id, "attacker")
    theirs = backend.takeover(attacker.address, attacker.engine.schema_tag, 60, SessionBudget()).fields
    replace_fields(backend, victim.address, victim.engine, {"t.page": theirs[b"t.page"]})
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert (restored.result, restored.cause) == ("bailout", "manifest")


def test_replaying_a_whole_older_hash_is_still_possible(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    """The documented limit (docs/envelope.md): an older hash restored whole is consistent."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    kernel = write_two(settings, backend, kernel_id, cookie)
    snapshot = backend.takeover(kernel.address, kernel.engine.schema_tag, 60, SessionBudget())
    kernel.session.generation = snapshot.generation
    kernel.set("t.page", 2)
    assert flushed(kernel.engine) == 2
    current = backend.peek_generation(kernel.address)
    assert snapshot.meta is not None and current is not None
    fields = {name.decode(): data for name, data in snapshot.fields.items()}
    meta = attrs.evolve(snapshot.meta, generation=current)
    assert backend.flush(FlushRequest(kernel.address, meta, fields, 60, must_exist=True))
    assert dict(make_engine(settings, backend).restore(kernel_id, cookie).values)["t.page"] == 1


# -- budgets --------------------------------------------------------------------------------------


def test_a_session_over_its_key_budget_drops_the_excess_and_keeps_the_rest(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    engine = make_engine(settings, backend, max_session_keys=3)
    kernel = Kernel(engine, kernel_id, cookie)
    family = specs["family"]
    with caplog.at_level(logging.WARNING, logger="solara.state"):
        for uid in range(5):
            kernel.set(family.key_for(uid=uid), f"query {uid}")
        assert engine.drain(5.0) == 0
    block = engine.state_block()
    assert (block["flush_ok"], block["sync_budget_dropped"]) == (1, 2)
    budget_lines = [line for line in caplog.messages if line.startswith("budget ")]
    assert len(budget_lines) == 1 and "over=keys" in budget_lines[0] and "n_keys=2" in budget_lines[0]
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert sorted(restored.values) == ["user:0:query", "user:1:query", "user:2:query"]


def test_a_session_over_its_byte_budget_drops_what_does_not_fit(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    engine = make_engine(settings, backend, max_session_bytes=300)
    kernel = Kernel(engine, kernel_id, cookie)
    kernel.set("t.page", 1)
    kernel.set("t.blob", "b" * 150)
    assert engine.drain(5.0) == 0
    kernel.set("t.blob", "b" * 330)  # under the key's own cap (400), over the session's 300 bytes
    assert engine.drain(5.0) == 0
    assert engine.state_block()["sync_budget_dropped"] == 1
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert dict(restored.values) == {"t.page": 1}, "the dropped key's older value is not restored either"


@pytest.mark.parametrize("budget", [{"max_session_keys": 3}, {"max_session_bytes": 200}])
def test_a_takeover_over_budget_bails_out_without_reading_the_session(
    settings: Settings, backend: Backend, specs: dict[str, Any], budget: dict[str, int]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    writer = make_engine(settings, backend)
    kernel = Kernel(writer, kernel_id, cookie)
    for uid in range(5):
        kernel.set(specs["family"].key_for(uid=uid), "q" * 30)
    assert flushed(writer) == 1
    strict = make_engine(settings, backend, **budget)
    restored = strict.restore(kernel_id, cookie)
    assert (restored.result, restored.cause, dict(restored.values)) == ("bailout", "budget", {})
    assert backend.peek_generation(kernel.address) is None, "the oversized session is removed"
    assert strict.state_block()["restore_bytes_total"] == 0


# -- what the engine refuses never escapes as an exception ----------------------------------------


@pytest.mark.parametrize("kernel_id", ["", "a" * 129, "x" * 12_000, "kernel\nrestore result=success", "é"])
def test_a_refused_kernel_id_is_a_skipped_restore_without_rights(
    settings: Settings, backend: Backend, specs: dict[str, Any], kernel_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(settings, backend)
    with caplog.at_level(logging.INFO, logger="solara.state"):
        restored = engine.restore(kernel_id, "cookie")
    assert (restored.result, restored.generation) == ("skipped", 0)
    assert all("\n" not in line for line in caplog.messages), "a log line stays one line"


@pytest.fixture
def raw_redis(settings: Settings) -> redis.Redis:
    """A plain client on the engines' Redis, to plant bytes no engine would write."""
    return redis.Redis.from_url(settings.url)


@pytest.mark.parametrize("settings", ["redis"], indirect=True)
@pytest.mark.parametrize("name", [b"\xff\xfe not utf-8", b"x" * 12_000])
def test_a_planted_field_name_bails_out_and_the_hash_is_removed(
    settings: Settings, backend: Backend, specs: dict[str, Any], raw_redis: redis.Redis, name: bytes
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    kernel = write_two(settings, backend, kernel_id, cookie)
    raw_redis.hset(settings.prefix + kernel.address, name, b"\x02\x00\x00\x01" + b"1" + b"\x00" * 32)
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert (restored.result, restored.cause) == ("bailout", "manifest")
    assert not raw_redis.exists(settings.prefix + kernel.address), "the poisoned hash does not linger"


@pytest.mark.parametrize("settings", ["redis"], indirect=True)
def test_a_corrupt_meta_field_bails_out_and_is_removed(
    settings: Settings, backend: Backend, specs: dict[str, Any], raw_redis: redis.Redis
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    kernel = write_two(settings, backend, kernel_id, cookie)
    raw_redis.hset(settings.prefix + kernel.address, b"\x00", b"not a manifest")
    restored = make_engine(settings, backend).restore(kernel_id, cookie)
    assert (restored.result, restored.cause) == ("bailout", "manifest")
    assert not raw_redis.exists(settings.prefix + kernel.address)


def plant(engine: Engine, backend: Backend, kernel_id: str, cookie: str, fields: dict[str, bytes]) -> None:
    """Store raw field values under a manifest signed with the engine's own keys (an insider's write)."""
    address = session_address(cookie, kernel_id)
    tag = tag_digest(engine.schema_tag)
    key_id, mac = engine.ring.sign_manifest(
        address=address, tag=tag, counter=1, fields={name: envelope_tag(data) for name, data in fields.items()}
    )
    assert backend.flush(FlushRequest(address, Meta(tag, key_id, 1, mac, 7), fields, 60))


def test_broken_framing_is_a_bailout_with_cause_envelope_not_codec(
    settings: Settings, backend: Backend, specs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    engine = make_engine(settings, backend)
    plant(engine, backend, kernel_id, cookie, {"t.page": b"\x09" + b"x" * 40})  # unknown format 9
    with caplog.at_level(logging.INFO, logger="solara.state"):
        restored = engine.restore(kernel_id, cookie)
    assert (restored.result, restored.cause) == ("bailout", "envelope")
    assert any("restore result=bailout" in line and "cause=envelope" in line for line in caplog.messages)


def test_a_stored_envelope_over_its_cap_is_never_decoded(
    settings: Settings, backend: Backend, specs: dict[str, Any]
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    engine = make_engine(settings, backend)
    big = b'"' + b"b" * 500 + b'"'  # t.blob's cap is 400 bytes: the writer would never store this
    payloads = {"t.blob": (Codec.JSON, 1, big), "t.page": (Codec.JSON, 1, b"4")}
    assert engine.store_payloads(kernel_id, cookie, payloads)
    restored = engine.restore(kernel_id, cookie)
    assert (restored.result, dict(restored.values)) == ("success", {"t.page": 4})
    assert engine.state_block()["sync_oversize_dropped"] == 1


def test_a_fresh_start_on_an_older_version_then_a_change_leaves_a_state_that_reads_back(
    settings: Settings, backend: Backend
) -> None:
    """A rollback: an old instance meets a value a newer one wrote, starts the page fresh
    (newer-version) and leaves the newer values for newer instances. When the page then
    changes something, its write must replace those values: they are not in its manifest, and
    left beside it they made the next read bail out and delete the session (chaos seed 801)."""
    from solara_persisted import persisted
    from solara_persisted.spec import registry

    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    with registry.isolated():

        @persisted(key="t.note", version=2)
        def note_v2() -> str:
            return ""

        @persisted(key="t.other")
        def other_v2() -> str:
            return ""

        newer = Kernel(make_engine(settings, backend), kernel_id, cookie)
        newer.set("t.note", "written at version 2")
        newer.set("t.other", "beside it")
        assert flushed(newer.engine) == 1
    with registry.isolated():

        @persisted(key="t.note")
        def note_v1() -> str:
            return ""

        @persisted(key="t.other")
        def other_v1() -> str:
            return ""

        older = Kernel(make_engine(settings, backend), kernel_id, cookie)
        assert (older.restored.result, older.restored.cause) == ("fresh-schema", "newer-version")
        older.set("t.other", "changed on the fresh page")
        assert flushed(older.engine) == 1
        again = make_engine(settings, backend).restore(kernel_id, cookie)
    assert (again.result, dict(again.values)) == ("success", {"t.other": "changed on the fresh page"})
