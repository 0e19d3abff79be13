"""The example cart's goldens (v1, v2, v3) restore through the engine, used the way an app's tests use the plugin;
the ``golden`` command adds and never overwrites; a broken migration fails naming the key and version;
families and retired keys."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from syrupy.assertion import SnapshotAssertion

from solara_persisted.cli import main
from solara_persisted.migrations import migration, retired
from solara_persisted.pytest_plugin import PersistedRestores
from solara_persisted.schema.apps import load_apps
from solara_persisted.schema.goldens import write_goldens
from solara_persisted.spec import Registry, persisted_family, registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "shop" / "state.py"
SCHEMAS = ROOT / "examples" / "shop" / "schemas"
GOLDENS = ROOT / "examples" / "shop" / "goldens"


@pytest.fixture
def persisted_registry() -> Iterator[Registry]:
    """The plugin's hook for apps that build their registry themselves: here, the example shop alone."""
    with registry.isolated() as isolated:
        load_apps([str(EXAMPLE)])
        yield isolated


def test_every_golden_restores_to_its_snapshot(
    persisted_restores: PersistedRestores, snapshot: SnapshotAssertion
) -> None:
    persisted_restores.assert_match(snapshot)


def test_goldens_restore_through_rename_type_change_and_added_field(
    persisted_restores: PersistedRestores, persisted_registry: Registry
) -> None:
    cart = persisted_registry.get("shop.cart")
    assert cart is not None
    Cart = cart.type
    assert persisted_restores() == {
        "shop.cart": {
            1: Cart(skus=("tea", "cup"), total=1250, coupon=None),  # product_ids renamed, "12.50" -> cents
            2: Cart(skus=("tea",), total=320, coupon=None),
            3: Cart(),
        }
    }


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_golden_adds_the_declared_version_and_never_overwrites(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, schemas)
    v3 = schemas / "shop.cart" / "v3.json"
    doc = json.loads(v3.read_text())
    doc["examples"].append({"coupon": "WELCOME", "skus": ["tea"], "total": 320})
    v3.write_text(json.dumps(doc))
    goldens = tmp_path / "goldens"
    with registry.isolated():
        first = run("golden", EXAMPLE, "--dir", goldens, "--schemas-dir", schemas)
        assert first.exit_code == 0, first.output
        written = goldens / "shop.cart" / "v3.json"
        assert written.read_bytes() == b'{"skus":["tea"],"total":320,"coupon":"WELCOME"}\n'
        assert sorted(p.name for p in goldens.rglob("*.json")) == ["v3.json"]  # only the declared version

        written.write_bytes(b'{"skus":["cup"],"total":1,"coupon":null}\n')  # as committed earlier
        again = run("golden", EXAMPLE, "--dir", goldens, "--schemas-dir", schemas)
    assert again.exit_code == 0, again.output
    assert "kept" in again.output and "never rewritten" in again.output
    assert written.read_bytes() == b'{"skus":["cup"],"total":1,"coupon":null}\n'


def test_golden_without_a_committed_schema_writes_the_default(tmp_path: Path) -> None:
    with registry.isolated():
        result = run("golden", EXAMPLE, "--dir", tmp_path / "goldens", "--schemas-dir", tmp_path / "none")
    assert result.exit_code == 0, result.output
    assert "from the default" in result.output
    assert (
        tmp_path / "goldens" / "shop.cart" / "v3.json"
    ).read_bytes() == b'{"skus":[],"total":0,"coupon":null}\n'


def test_a_broken_migration_fails_naming_the_key_the_version_and_the_path(tmp_path: Path) -> None:
    broken = tmp_path / "state.py"
    text = EXAMPLE.read_text()
    assert 'Rename("product_ids", "skus")' in text
    broken.write_text(text.replace('Rename("product_ids", "skus")', 'Rename("product_ids", "sku")'))
    with registry.isolated() as isolated:
        load_apps([str(broken)])
        restores = PersistedRestores(isolated, GOLDENS)
        with pytest.raises(pytest.fail.Exception) as failed:
            restores()
    message = str(failed.value)
    assert "shop.cart@v1" in message and "cause=migration" in message and "'sku'" in message
    assert "shop.cart@v2" not in message and "shop.cart@v3" not in message  # only v1 went through the rename


def test_a_bumped_version_without_its_golden_fails_with_the_command_to_run(tmp_path: Path) -> None:
    bumped = tmp_path / "state.py"
    text = EXAMPLE.read_text()
    bumped.write_text(
        text.replace('key="shop.cart", version=3', 'key="shop.cart", version=4')
        + "\nmigration(cart, from_version=3, ops=[])\n"
    )
    with registry.isolated() as isolated:
        load_apps([str(bumped)])
        with pytest.raises(pytest.fail.Exception) as failed:
            PersistedRestores(isolated, GOLDENS)()
    message = str(failed.value)
    assert "declared at version 4" in message and "v4.json is missing" in message
    assert "solara-persisted golden" in message


def test_family_goldens_restore_and_stray_goldens_are_reported(tmp_path: Path) -> None:
    goldens = tmp_path / "goldens"
    with registry.isolated() as isolated:
        persisted_family("user:{uid}:query", type=list[str], default=list, version=2)
        migration("user:{uid}:query", from_version=1, ops=[])
        (goldens / "user%3A%7Buid%7D%3Aquery").mkdir(parents=True)
        (goldens / "user%3A%7Buid%7D%3Aquery" / "v1.json").write_bytes(b'["tea"]\n')
        written = write_goldens(isolated, goldens, tmp_path / "no-schemas")
        assert written.written == [(goldens / "user%3A%7Buid%7D%3Aquery" / "v2.json", "the default")]
        (goldens / "shop.basket").mkdir()
        (goldens / "shop.basket" / "v1.json").write_bytes(b"[]\n")
        restores = PersistedRestores(isolated, goldens)
        assert restores(key="user:{uid}:query") == {"user:{uid}:query": {1: ["tea"], 2: []}}
        with pytest.raises(pytest.fail.Exception) as failed:
            restores()
        assert "holds goldens of 'shop.basket', which the app does not declare" in str(failed.value)
        retired("shop.basket", successor=None)
        assert restores() == {"user:{uid}:query": {1: ["tea"], 2: []}}
