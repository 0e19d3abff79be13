"""Session scope: values every tab and reload of one browser session shares (several engines, one store).

Played as a scheduler would: tabs whose writes land in the reverse order of their changes, a
paused instance that wakes up, a forget racing pending writes; and as an attacker: another cookie,
a stored stamp moved forward. On the in-process backend and a real redis-server.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterator

import pytest
from engine_kit import (  # noqa: F401
    OLD_SECRET,
    SECRET,
    Kernel,
    backend_fixture,
    make_engine,
    settings_fixture,
)

from solara_persisted.address import shared_address
from solara_persisted.backends.base import STAMP_SIZE, Backend, SessionBudget
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.errors import SpecError
from solara_persisted.spec import PersistConfig, persisted, persisted_family, registry


@pytest.fixture(name="specs")
def specs_fixture() -> Iterator[None]:
    with registry.isolated():

        @persisted(key="s.theme", scope="session")
        def theme() -> str:
            return "light"

        @persisted(key="s.page")
        def page() -> int:
            return 0

        persisted_family("s.draft:{doc}", type=str, default="", scope="session")
        yield


def drained(engine: Engine) -> Engine:
    assert engine.drain(5.0) == 0
    return engine


def shared_raw(backend: Backend, settings: Settings, kernel: Kernel) -> dict[bytes, bytes]:
    """The shared hash as stored (memory's raw view, or HGETALL on Redis)."""
    at = shared_address(kernel.address)
    if settings.backend == "memory":
        return backend.raw(at) or {}  # type: ignore[attr-defined]
    import redis

    return redis.Redis.from_url(settings.url).hgetall(settings.prefix + at)


def new_tab(engine: Engine, cookie: str) -> Kernel:
    return Kernel(engine, str(uuid.uuid4()), cookie)


def test_a_reload_restores_session_values_and_resets_kernel_values(
    settings: Settings, backend: Backend, specs: None
) -> None:
    cookie = secrets.token_urlsafe(16)
    first = new_tab(make_engine(settings, backend), cookie)
    first.set("s.theme", "dark")
    first.set("s.page", 7)
    first.set("s.draft:intro", "hello")
    drained(first.engine)
    first.engine.close_session(first.session, "page-close")  # F5: the old page closes, its kernel state goes
    reload = new_tab(make_engine(settings, backend), cookie)
    assert reload.restored.result == "success"
    assert dict(reload.restored.values) == {"s.theme": "dark", "s.draft:intro": "hello"}
    stranger = new_tab(make_engine(settings, backend), secrets.token_urlsafe(16))
    assert (stranger.restored.result, dict(stranger.restored.values)) == ("miss", {})


def test_a_failover_restores_both_scopes(settings: Settings, backend: Backend, specs: None) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    a = Kernel(make_engine(settings, backend), kernel_id, cookie)
    a.set("s.theme", "dark")
    a.set("s.page", 3)
    drained(a.engine)
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)
    assert (b.restored.result, dict(b.restored.values)) == ("success", {"s.theme": "dark", "s.page": 3})


def test_the_newest_change_wins_whatever_order_the_writes_land_in(
    settings: Settings, backend: Backend, specs: None
) -> None:
    cookie = secrets.token_urlsafe(16)
    slow = new_tab(make_engine(settings, backend, flush_debounce=60.0), cookie)
    fast = new_tab(make_engine(settings, backend), cookie)
    slow.set("s.theme", "older")  # changed first, written last
    fast.set("s.theme", "newer")
    drained(fast.engine)
    drained(slow.engine)  # lands after the newer change: dropped, not an error
    assert slow.engine.state_block()["flush_rejected"] == 0 and not slow.session.stale
    assert dict(new_tab(make_engine(settings, backend), cookie).restored.values) == {"s.theme": "newer"}
    slow.set("s.theme", "newest")  # a later change from the slow tab wins again
    drained(slow.engine)
    assert dict(new_tab(make_engine(settings, backend), cookie).restored.values) == {"s.theme": "newest"}


def test_a_paused_instance_writes_no_shared_value_after_its_kernel_moved(
    settings: Settings, backend: Backend, specs: None
) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    paused = Kernel(make_engine(settings, backend, flush_debounce=60.0), kernel_id, cookie)
    paused.set("s.page", 1)
    drained(paused.engine)
    paused.set("s.theme", "stale")  # pending when the instance freezes
    b = Kernel(make_engine(settings, backend), kernel_id, cookie)  # the reconnect lands on B
    drained(paused.engine)  # A wakes up: its whole write is fenced out
    assert paused.session.stale and paused.engine.state_block()["flush_rejected"] == 1
    assert dict(new_tab(make_engine(settings, backend), cookie).restored.values) == {}
    b.set("s.theme", "from-b")
    drained(b.engine)
    assert dict(new_tab(make_engine(settings, backend), cookie).restored.values) == {"s.theme": "from-b"}


def test_a_tab_close_keeps_shared_values(settings: Settings, backend: Backend, specs: None) -> None:
    cookie = secrets.token_urlsafe(16)
    tab = new_tab(make_engine(settings, backend), cookie)
    tab.set("s.theme", "dark")
    drained(tab.engine)
    tab.engine.close_session(tab.session, "page-close")
    assert tab.engine.backend.peek_generation(tab.address) is None, "the kernel's own hash is gone"
    assert dict(new_tab(make_engine(settings, backend), cookie).restored.values) == {"s.theme": "dark"}


def test_forget_drops_shared_values_and_every_change_made_before_it(
    settings: Settings, backend: Backend, specs: None
) -> None:
    cookie = secrets.token_urlsafe(16)
    tab = new_tab(make_engine(settings, backend), cookie)
    tab.set("s.theme", "dark")
    tab.set("s.page", 4)
    drained(tab.engine)
    other = new_tab(make_engine(settings, backend, flush_debounce=60.0), cookie)
    other.set("s.theme", "pending-before-logout")
    assert tab.engine.forget_shared(tab.address)
    drained(other.engine)  # the other tab's older change lands after the logout: dropped
    after = new_tab(make_engine(settings, backend), cookie)
    assert (after.restored.result, dict(after.restored.values)) == ("miss", {})
    assert Kernel(make_engine(settings, backend), tab.session.kernel_id, cookie).restored.values == {"s.page": 4}
    after.set("s.theme", "after-logout")  # a change made after the forget is kept
    drained(after.engine)
    assert dict(new_tab(make_engine(settings, backend), cookie).restored.values) == {"s.theme": "after-logout"}


def test_another_cookie_cannot_forget_a_session(settings: Settings, backend: Backend, specs: None) -> None:
    owner_cookie = secrets.token_urlsafe(16)
    owner = new_tab(make_engine(settings, backend), owner_cookie)
    owner.set("s.theme", "dark")
    drained(owner.engine)
    stranger = new_tab(make_engine(settings, backend), secrets.token_urlsafe(16))
    assert stranger.engine.forget_shared(stranger.address)
    assert dict(new_tab(make_engine(settings, backend), owner_cookie).restored.values) == {"s.theme": "dark"}


def test_a_stamp_moved_forward_in_the_store_is_a_bailout(
    settings: Settings, backend: Backend, specs: None, caplog: pytest.LogCaptureFixture
) -> None:
    cookie = secrets.token_urlsafe(16)
    tab = new_tab(make_engine(settings, backend), cookie)
    tab.set("s.theme", "dark")
    drained(tab.engine)
    (data,) = shared_raw(backend, settings, tab).values()
    forged = b"9" * STAMP_SIZE + data[STAMP_SIZE:]  # "newest forever", the value unchanged
    at = shared_address(tab.address)
    if settings.backend == "memory":
        backend._hashes[settings.prefix + at].fields[b"s.theme"] = forged  # type: ignore[attr-defined]
    else:
        import redis

        redis.Redis.from_url(settings.url).hset(settings.prefix + at, "s.theme", forged)
    with caplog.at_level(logging.WARNING, logger="solara.state"):
        reload = new_tab(make_engine(settings, backend), cookie)
    assert (reload.restored.result, reload.restored.cause, dict(reload.restored.values)) == ("bailout", "hmac", {})
    assert b"s.theme" not in shared_raw(backend, settings, tab), "the poisoned shared state is forgotten"


def test_a_value_from_another_schema_tag_is_skipped_not_failed(
    settings: Settings, backend: Backend, specs: None
) -> None:
    cookie = secrets.token_urlsafe(16)
    old = new_tab(make_engine(settings, backend, schema_tag="v1"), cookie)
    old.set("s.theme", "dark")
    drained(old.engine)
    new = new_tab(make_engine(settings, backend, schema_tag="v2"), cookie)
    assert (new.restored.result, dict(new.restored.values)) == ("miss", {})
    again = new_tab(make_engine(settings, backend, schema_tag="v1"), cookie)
    assert dict(again.restored.values) == {"s.theme": "dark"}, "left for the instances on the old tag"


def test_shared_state_over_budget_is_not_read(settings: Settings, backend: Backend, specs: None) -> None:
    cookie = secrets.token_urlsafe(16)
    tab = new_tab(make_engine(settings, backend), cookie)
    for doc in range(5):
        tab.set(f"s.draft:{doc}", "x" * 10)
    drained(tab.engine)
    small = make_engine(settings, backend, max_session_keys=3)
    assert small.budget == SessionBudget(3, settings.max_session_bytes)
    reload = new_tab(small, cookie)
    assert (reload.restored.result, reload.restored.cause) == ("bailout", "budget")


def test_a_writer_keeps_shared_state_within_its_key_budget(
    settings: Settings, backend: Backend, specs: None
) -> None:
    cookie = secrets.token_urlsafe(16)
    tab = new_tab(make_engine(settings, backend, max_session_keys=2), cookie)
    for doc in range(4):
        tab.set(f"s.draft:{doc}", "x")
    drained(tab.engine)
    assert len(shared_raw(backend, settings, tab)) == 2
    assert tab.engine.state_block()["sync_budget_dropped"] == 2


def test_a_key_whose_scope_changed_in_a_deploy_is_skipped(settings: Settings, backend: Backend) -> None:
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    with registry.isolated():

        @persisted(key="s.moved")
        def before() -> int:
            return 0

        kernel = Kernel(make_engine(settings, backend), kernel_id, cookie)
        kernel.set("s.moved", 5)
        drained(kernel.engine)
    with registry.isolated():

        @persisted(key="s.moved", scope="session")
        def after() -> int:
            return 0

        restored = Kernel(make_engine(settings, backend), kernel_id, cookie).restored
        assert (restored.result, dict(restored.values)) == ("success", {})


def test_a_wrong_scope_is_refused_at_declaration() -> None:
    with registry.isolated(), pytest.raises(SpecError, match="scope must be 'kernel' or 'session'"):

        @persisted(key="s.bad", scope="tab")  # type: ignore[arg-type]
        def bad() -> int:
            return 0

    with registry.isolated(), pytest.raises(SpecError, match="scope must be"):
        persisted_family("s.bad:{x}", type=int, default=0, scope="browser")  # type: ignore[arg-type]
    assert PersistConfig(key="k", scope="session").scope == "session"


def test_a_rotation_resigns_shared_values_so_the_old_key_can_be_dropped(
    settings: Settings, backend: Backend, specs: None
) -> None:
    """Every reload refreshes the shared hash's TTL, so a shared value signed under the old key never
    ages out on its own: the restore that verified it under a non-primary key re-signs it."""
    cookie = secrets.token_urlsafe(16)
    old = new_tab(make_engine(settings, backend, secret_keys=(OLD_SECRET,)), cookie)
    old.set("s.theme", "dark")
    drained(old.engine)
    rolled = new_tab(make_engine(settings, backend, secret_keys=(SECRET, OLD_SECRET)), cookie)
    assert dict(rolled.restored.values) == {"s.theme": "dark"} and rolled.restored.resign == {"s.theme"}
    drained(rolled.engine)
    dropped = new_tab(make_engine(settings, backend, secret_keys=(SECRET,)), cookie)
    assert (dropped.restored.result, dict(dropped.restored.values)) == ("success", {"s.theme": "dark"})


def test_a_resign_keeps_its_stamp_so_a_newer_change_from_another_tab_wins(
    settings: Settings, backend: Backend, specs: None
) -> None:
    cookie = secrets.token_urlsafe(16)
    old = new_tab(make_engine(settings, backend, secret_keys=(OLD_SECRET,)), cookie)
    old.set("s.theme", "dark")
    drained(old.engine)
    rolled = (SECRET, OLD_SECRET)
    resigning = new_tab(make_engine(settings, backend, secret_keys=rolled, flush_debounce=60.0), cookie)
    other = new_tab(make_engine(settings, backend, secret_keys=rolled), cookie)
    other.set("s.theme", "light")  # changed in another tab after the restore, before the re-sign lands
    drained(other.engine)
    drained(resigning.engine)  # re-signs "dark" as of when it was changed: older, so dropped
    assert dict(new_tab(make_engine(settings, backend), cookie).restored.values) == {"s.theme": "light"}
