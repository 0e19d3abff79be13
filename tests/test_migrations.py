"""Migrations on restore, through the engine and the memory backend: older versions up, newer ones
back down (or a fresh start that leaves them alone), and every failure a bail-out naming the key,
the stored version and the failing path."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import orjson
import pytest

from solara_persisted.address import session_address
from solara_persisted.backends import create_backend
from solara_persisted.backends.base import Backend
from solara_persisted.config import Settings
from solara_persisted.engine import Engine, Restored
from solara_persisted.envelope import Codec
from solara_persisted.errors import MigrationError, SpecError
from solara_persisted.migrations import AddField, Convert, RemoveField, Rename, convert, migration, retired
from solara_persisted.schema.apps import load_apps
from solara_persisted.spec import persisted, registry

SECRET = secrets.token_urlsafe(32)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shop" / "state.py"


@pytest.fixture
def backend() -> Iterator[Backend]:
    settings = Settings(backend="memory", secret_keys=(SECRET,), session_http_only=True)
    backend = create_backend(settings)
    yield backend
    backend.close()


@pytest.fixture
def engine(backend: Backend) -> Engine:
    return Engine(Settings(backend="memory", secret_keys=(SECRET,), session_http_only=True), backend=backend)


@pytest.fixture
def shop() -> Iterator[ModuleType]:
    """The example app's cart spec (version 3, migrations 1 -> 2 -> 3), in a registry of its own."""
    with registry.isolated():
        (module,) = load_apps([str(EXAMPLE)])
        yield module


def store(engine: Engine, kernel_id: str, cookie: str, fields: dict[str, tuple[int, Any]]) -> None:
    """Write JSON values as envelopes sealed at the given versions, as an instance of that version would."""
    payloads = {key: (Codec.JSON, version, orjson.dumps(value)) for key, (version, value) in fields.items()}
    assert engine.store_payloads(kernel_id, cookie, payloads)


def restore(engine: Engine, fields: dict[str, tuple[int, Any]]) -> tuple[Restored, str]:
    """Store ``fields`` for a new session and restore it; returns the outcome and the session's address."""
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    store(engine, kernel_id, cookie, fields)
    return engine.restore(kernel_id, cookie), session_address(cookie, kernel_id)


@pytest.mark.parametrize(
    ("version", "stored"),
    [
        (1, {"product_ids": ["tea", "cup"], "total": "12.50"}),
        (2, {"skus": ["tea", "cup"], "total": "12.50"}),
        (3, {"skus": ["tea", "cup"], "total": 1250, "coupon": None}),
    ],
)
def test_every_old_version_restores_as_the_current_one(
    engine: Engine, shop: ModuleType, version: int, stored: dict[str, Any]
) -> None:
    restored, _ = restore(engine, {"shop.cart": (version, stored)})
    assert restored.result == "success", restored
    assert restored.values == {"shop.cart": shop.Cart(skus=("tea", "cup"), total=1250, coupon=None)}


def test_a_migration_output_that_does_not_fit_is_a_bailout_naming_key_version_and_path(
    engine: Engine, backend: Backend, shop: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    # A version 2 value whose total is no decimal: the conversion to cents cannot produce an int.
    with caplog.at_level(logging.INFO, logger="solara.state"):
        restored, address = restore(engine, {"shop.cart": (2, {"skus": ["tea"], "total": "lots"})})
    assert (restored.result, restored.cause, dict(restored.values)) == ("bailout", "migration", {})
    warning = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("restore of key="))
    assert "key=shop.cart" in warning
    assert "stored at version 2, at .total" in warning
    assert "migration 2 -> 3 declared at examples/shop/state.py:" in warning
    assert any(
        "restore result=bailout" in line and "key=shop.cart" in line and "cause=migration" in line
        for line in caplog.messages
    )
    assert engine.state_block()["restore_bailout"] == 1
    assert backend.peek_generation(address) is None, "a bail-out deletes the poisoned state"


def test_validation_after_the_chain_names_the_failing_path(shop: ModuleType) -> None:
    spec = registry.get("shop.cart")
    assert spec is not None
    payload = orjson.dumps({"product_ids": ["tea", 7], "total": "1.00"})
    with pytest.raises(MigrationError) as caught:
        convert(spec, "shop.cart", 1, payload)
    assert caught.value.version == 1
    assert caught.value.path == ".skus[1]"
    assert str(caught.value) == (
        "persisted key shop.cart stored at version 1, at .skus[1]: "
        "after migrating to version 3: expected string, got JSON integer"
    )


def test_a_missing_step_is_a_migration_bailout(engine: Engine) -> None:
    with registry.isolated():

        @persisted(key="t.count", version=3)
        def count() -> int:
            return 0

        migration(count, from_version=2, ops=[])
        restored, _ = restore(engine, {"t.count": (1, 5)})
    assert (restored.result, restored.cause) == ("bailout", "migration")


@attrs.frozen
class CartV2:
    """What an instance still on version 2 of the example declares."""

    skus: tuple[str, ...] = ()
    total: str = "0.00"


def test_newer_version_restores_backwards_through_a_reversible_chain(
    engine: Engine, shop: ModuleType
) -> None:
    with registry.isolated():

        @persisted(key="shop.cart", version=2)
        def cart() -> CartV2:
            return CartV2()

        # Shipped one release ahead of the bump, so this release can read what the next one writes.
        migration(
            cart,
            from_version=2,
            ops=[Convert("total", shop.text_to_cents, shop.cents_to_text), AddField("coupon", None)],
        )
        restored, _ = restore(engine, {"shop.cart": (3, {"skus": ["tea"], "total": 1250, "coupon": None})})
    assert restored.result == "success", restored
    assert restored.values == {"shop.cart": CartV2(skus=("tea",), total="12.50")}


def test_newer_version_whose_way_back_fails_starts_fresh_instead_of_bailing_out(
    engine: Engine, backend: Backend, shop: ModuleType
) -> None:
    with registry.isolated():

        @persisted(key="shop.cart", version=2)
        def cart() -> CartV2:
            return CartV2()

        migration(cart, from_version=2, ops=[Convert("total", str, shop.cents_to_text)])
        # The newer instance wrote a total the backward conversion cannot read.
        restored, address = restore(engine, {"shop.cart": (3, {"skus": [], "total": "n/a"})})
    assert (restored.result, restored.cause) == ("fresh-schema", "newer-version")
    assert backend.peek_generation(address) is not None, "the newer state is not deleted"


def test_newer_version_without_a_way_back_starts_fresh_and_keeps_the_state(
    engine: Engine, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    with registry.isolated():

        @persisted(key="shop.cart", version=2)
        def cart() -> CartV2:
            return CartV2()

        with caplog.at_level(logging.INFO, logger="solara.state"):
            restored, address = restore(
                engine, {"shop.cart": (3, {"skus": [], "total": 0, "coupon": None})}
            )
    assert (restored.result, restored.cause, dict(restored.values)) == ("fresh-schema", "newer-version", {})
    assert engine.state_block()["restore_schema_reset"] == 1
    assert any("result=fresh-schema" in line and "cause=newer-version" in line for line in caplog.messages)
    assert backend.peek_generation(address) is not None, "the newer state is not deleted"


def test_function_steps_run_on_the_json_form(engine: Engine) -> None:
    with registry.isolated():

        @persisted(key="t.tags", version=2)
        def tags() -> list[str]:
            return []

        @migration(tags, from_version=1)
        def split(text: str) -> list[str]:
            return text.split(",")

        restored, _ = restore(engine, {"t.tags": (1, "a,b")})
    assert restored.values == {"t.tags": ["a", "b"]}


def test_operations_run_both_ways() -> None:
    step = [Rename("a", "b"), AddField("c", []), RemoveField("d", default=0), Convert("e", str, int)]
    obj: Any = {"a": 1, "d": 4, "e": 5}
    for op in step:
        obj = op.forward(obj)
    assert obj == {"b": 1, "c": [], "e": "5"}
    for op in reversed(step):
        obj = op.backward(obj)
    assert obj == {"a": 1, "d": 0, "e": 5}
    assert not RemoveField("d").reversible
    assert not Convert("e", str).reversible


def test_rename_onto_an_existing_property_fails_at_its_path(engine: Engine) -> None:
    with registry.isolated():

        @persisted(key="t.obj", version=2)
        def obj() -> dict[str, int]:
            return {}

        migration(obj, from_version=1, ops=[Rename("a", "b")])
        spec = registry.get("t.obj")
        assert spec is not None
        with pytest.raises(MigrationError, match=r"at .b: migration 1 -> 2 declared at .*would overwrite"):
            convert(spec, "t.obj", 1, b'{"a": 1, "b": 2}')


def test_declarations_are_checked_where_they_are_written() -> None:
    with registry.isolated():

        @persisted(key="t.n", version=2)
        def n() -> int:
            return 0

        with pytest.raises(
            SpecError, match=r"test_migrations.py:\d+: .*from the current version 2 .* not reversible"
        ):
            migration(n, from_version=2, ops=[RemoveField("x")])
        with pytest.raises(SpecError, match=r"a migration from version 3 of 't\.n', declared at version 2"):
            migration(n, from_version=3, ops=[])
        with pytest.raises(SpecError, match=r"'t\.other' is not a declared persisted key"):
            migration("t.other", from_version=1, ops=[])
        migration("t.n", from_version=1, ops=[])
        with pytest.raises(SpecError, match="already has a migration from version 1"):
            migration(n, from_version=1, ops=[])
        with pytest.raises(SpecError, match="ops must be Rename/AddField/RemoveField/Convert"):
            migration(n, from_version=2, ops=[lambda d: d])  # type: ignore[list-item]
        retired("t.gone", successor="t.n")
        assert registry.retired() == {"t.gone": "t.n"}
    assert "t.gone" not in registry.retired(), "isolation restores the retired keys too"


def test_an_older_version_with_a_repeated_key_is_refused_like_any_stored_value(
    engine: Engine, shop: ModuleType
) -> None:
    payload = b'{"skus":["tea"],"total":"1.00","total":"2.00"}'
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe()
    assert engine.store_payloads(kernel_id, cookie, {"shop.cart": (Codec.JSON, 2, payload)})
    restored = engine.restore(kernel_id, cookie)
    assert (restored.result, restored.cause) == ("bailout", "migration")
