"""The app sees and steers its restore: on_restore, restore_info, forget_session and the
development-mode check at ``.set()``; real kernel contexts, a real redis-server."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import solara
from support import wait_until
from test_solara_integration import engine, new_context  # noqa: F401

import solara_persisted
from solara_persisted import RestoreInfo, forget_session, on_restore, restore_info
from solara_persisted.engine import Engine
from solara_persisted.errors import EncodeError, SpecError
from solara_persisted.migrations import AddField, migration
from solara_persisted.restore_info import clear_callbacks
from solara_persisted.spec import persisted, registry


@attrs.frozen
class Cart:
    items: tuple[str, ...] = ()
    coupon: str = ""


@attrs.frozen
class CartV2:
    items: tuple[str, ...] = ()
    coupon: str = ""
    gift: bool = False


@pytest.fixture
def specs() -> Iterator[dict[str, Any]]:
    with registry.isolated():

        @persisted(key="r.page")
        def page() -> int:
            return 0

        @persisted(key="r.theme", scope="session")
        def theme() -> str:
            return "light"

        yield {"page": page, "theme": theme}
    clear_callbacks()


def settle(active: Engine) -> None:
    wait_until(lambda: active.state_block()["flush_ok"] >= 1 and not active.writer.pending(), "written")


def test_callbacks_see_what_came_back_before_the_first_read(engine: Engine, specs: dict[str, Any]) -> None:  # noqa: F811
    seen: list[tuple[str, RestoreInfo]] = []
    derived = solara.reactive(0)

    @on_restore
    def every(info: RestoreInfo) -> None:
        seen.append(("every", info))
        derived.set(specs["page"].value * 10)  # restored values are in place, reactives settable

    @on_restore(key="r.page")
    def page_only(info: RestoreInfo) -> None:
        seen.append(("page", info))

    kernel_id, cookie = uuid.uuid4().hex, "cookie-r"
    first = new_context(kernel_id, cookie)
    with first:
        assert specs["page"].value == 0
        assert [name for name, _ in seen] == ["every"] and seen[0][1].result == "miss"
        specs["page"].value = 4
        specs["theme"].value = "dark"
    settle(engine)
    first.close(reason="cull")
    seen.clear()
    second = new_context(kernel_id, cookie)
    with second:
        info = restore_info()
        assert info is not None
        assert derived.value == 40, "the callback ran before this first read and saw the restored value"
    assert [name for name, _ in seen] == ["every", "page"], "each callback once, the keyed one too"
    assert (info.result, info.keys, dict(info.migrated)) == ("success", ("r.page", "r.theme"), {})
    assert info.age is not None and 0 <= info.age < 30 and 0 < info.duration < 5 and info.instance
    second.close(reason="cull")


def test_a_failing_callback_is_logged_and_the_restore_goes_on(
    engine: Engine, specs: dict[str, Any], caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    ran: list[str] = []

    @on_restore
    def broken(info: RestoreInfo) -> None:
        raise RuntimeError("app bug")

    @on_restore
    def fine(info: RestoreInfo) -> None:
        ran.append(info.result)

    context = new_context(uuid.uuid4().hex, "cookie-f")
    with caplog.at_level(logging.ERROR, logger="solara.state"), context:
        assert specs["page"].value == 0
    assert ran == ["miss"]
    assert any("on_restore callback" in r.message and "broken" in r.message and r.exc_info for r in caplog.records)
    context.close(reason="cull")


def test_a_bad_key_or_callback_is_refused_at_registration() -> None:
    with pytest.raises(SpecError, match="empty"):
        on_restore(key="")
    with pytest.raises(SpecError, match="not callable"):
        on_restore(42)  # type: ignore[arg-type]


def test_restore_info_names_migrated_keys_and_their_versions(engine: Engine) -> None:  # noqa: F811
    kernel_id, cookie = uuid.uuid4().hex, "cookie-m"
    with registry.isolated():

        @persisted(key="r.cart", version=1)
        def cart_v1() -> Cart:
            return Cart()

        context = new_context(kernel_id, cookie)
        with context:
            cart_v1.value = Cart(("tea",))
        settle(engine)
        context.close(reason="cull")
    with registry.isolated():

        @persisted(key="r.cart", version=2)
        def cart_v2() -> CartV2:
            return CartV2()

        migration(cart_v2, from_version=1, ops=[AddField("gift", False)])
        context = new_context(kernel_id, cookie)
        with context:
            assert cart_v2.value.items == ("tea",)
            info = restore_info()
        assert info is not None and dict(info.migrated) == {"r.cart": 1}
        context.close(reason="cull")


def test_forget_session_drops_shared_values_and_resets_this_page(engine: Engine, specs: dict[str, Any]) -> None:  # noqa: F811
    cookie = "cookie-logout"
    first = new_context(uuid.uuid4().hex, cookie)
    with first:
        specs["theme"].value = "dark"
        specs["page"].value = 3
    settle(engine)
    with first:
        assert forget_session()
        assert specs["theme"].value == "light" and specs["page"].value == 3
    assert not engine.writer.pending(), "the reset to the default is nobody's change: nothing to write"
    first.close(reason="cull")
    again = new_context(uuid.uuid4().hex, cookie)
    with again:
        assert specs["theme"].value == "light"
        info = restore_info()
        assert info is not None and info.result == "miss"
    again.close(reason="cull")
    assert forget_session() is False, "outside a kernel"


def test_development_mode_refuses_an_unencodable_set_at_the_call(engine: Engine, specs: dict[str, Any]) -> None:  # noqa: F811
    assert not engine.settings.production
    context = new_context(uuid.uuid4().hex, "cookie-dev")
    with context:
        assert specs["page"].value == 0
        with pytest.raises(EncodeError, match=r"r\.page"):
            specs["page"].value = "not an int"  # type: ignore[assignment]
    context.close(reason="cull")


def test_production_does_no_encoding_work_at_set(engine: Engine, specs: dict[str, Any]) -> None:  # noqa: F811
    production = Engine(attrs.evolve(engine.settings, production=True), backend=engine.backend)
    context = new_context(uuid.uuid4().hex, "cookie-prod")
    from solara_persisted import solara_integration

    manager = solara_integration.KernelPersistence(production, context)
    context.state_persistence = context.state_flush_worker = manager
    with context:
        assert specs["page"].value == 0
        specs["page"].value = "not an int"  # type: ignore[assignment]  # refused later, in the writer's log
    assert production.writer.pending() == 1
    context.close(reason="cull")
    production.close()


def test_the_public_names_are_exported() -> None:
    assert {"on_restore", "restore_info", "RestoreInfo", "forget_session", "PersistConfig"} <= set(
        solara_persisted.__all__
    )
