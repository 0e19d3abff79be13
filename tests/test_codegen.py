"""``codegen`` and ``check`` on the examples and on drifted copies of them, and the schema diff.

Each example has its own schemas directory: the cart (``examples/shop/state.py``, three versions)
in ``examples/shop/schemas/``, the demo shop (``examples/shop_app.py``) in ``examples/schemas/``.
"""

from __future__ import annotations

import filecmp
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from solara_persisted.cli import main
from solara_persisted.schema.apps import load_apps
from solara_persisted.schema.diff import diff
from solara_persisted.schema.documents import key_dirname, schema_document
from solara_persisted.spec import persisted_family, registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "shop" / "state.py"
SCHEMAS = ROOT / "examples" / "shop" / "schemas"
SHOP_APP = ROOT / "examples" / "shop_app.py"
SHOP_APP_SCHEMAS = ROOT / "examples" / "schemas"


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    with registry.isolated():
        yield


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def app(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the example app and its committed schemas, to drift."""
    shutil.copytree(SCHEMAS, tmp_path / "schemas")
    module = tmp_path / "state.py"
    shutil.copy(EXAMPLE, module)
    return module, tmp_path / "schemas"


def edit(module: Path, old: str, new: str) -> None:
    text = module.read_text()
    assert old in text
    module.write_text(text.replace(old, new))


@pytest.mark.parametrize(("example", "schemas"), [(EXAMPLE, SCHEMAS), (SHOP_APP, SHOP_APP_SCHEMAS)])
def test_committed_schemas_are_up_to_date(example: Path, schemas: Path, tmp_path: Path) -> None:
    shutil.copytree(schemas, tmp_path / "copy")
    result = run("codegen", example, "--schemas-dir", tmp_path / "copy")
    assert result.exit_code == 0, result.output
    assert "wrote" not in result.output, result.output
    comparison = filecmp.dircmp(schemas, tmp_path / "copy")
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
    fresh = run("codegen", example, "--schemas-dir", tmp_path / "fresh")
    assert fresh.exit_code == 0, fresh.output
    written = sorted((tmp_path / "fresh").rglob("*.json"))  # the declared versions, from scratch
    assert written
    for path in written:
        assert path.read_bytes() == (schemas / path.relative_to(tmp_path / "fresh")).read_bytes(), path


def test_check_passes_on_each_example_with_a_summary() -> None:
    cart = run("check", EXAMPLE, "--schemas-dir", SCHEMAS)
    assert cart.exit_code == 0, cart.output
    lines = cart.output.splitlines()
    assert lines[-2:] == [
        "1 key: 1 evolved (shop.cart v2→v3: breaking .total, covered by migration)",
        "check passed",
    ], cart.output
    # the breaking row says a declared migration covers it, instead of reading as an alarm
    assert (
        "  v2 -> v3 .total: breaking, covered by migration v2→v3: type changed from string to integer"
        in lines
    )
    with registry.isolated():  # a process of its own would start empty too
        shop = run("check", SHOP_APP, "--schemas-dir", SHOP_APP_SCHEMAS)
    assert shop.exit_code == 0, shop.output
    assert shop.output.splitlines()[-2:] == ["4 keys: 4 unchanged", "check passed"], shop.output


def test_a_breaking_change_with_a_missing_migration_is_not_called_covered(app: tuple[Path, Path]) -> None:
    module, schemas = app
    text = module.read_text()
    module.write_text(text[: text.index("migration(\n    cart,\n    from_version=2")])  # drop the 2 -> 3 step
    result = run("check", module, "--schemas-dir", schemas)
    assert result.exit_code == 1, result.output
    assert "FAIL shop.cart the bump from version 2 to 3 has no migration" in result.output
    assert "1 evolved (shop.cart v2→v3: breaking .total, no migration)" in result.output
    assert ".total: breaking: type changed" in result.output


def test_check_fails_on_a_change_without_a_version_bump(app: tuple[Path, Path]) -> None:
    module, schemas = app
    edit(module, "coupon: str | None = None", "coupon: int | None = None")
    result = run("check", module, "--schemas-dir", schemas)
    assert result.exit_code == 1
    assert "FAIL shop.cart the shape of version 3 changed without a version bump" in result.output
    assert "breaking .coupon: alternative string removed" in result.output
    refused = run("codegen", module, "--schemas-dir", schemas)
    assert refused.exit_code == 1
    assert (schemas / "shop.cart" / "v3.json").read_bytes() == (
        SCHEMAS / "shop.cart" / "v3.json"
    ).read_bytes()


def test_a_bump_without_migration_fails_and_codegen_writes_a_stub(app: tuple[Path, Path]) -> None:
    module, schemas = app
    edit(module, "version=3", "version=4")
    edit(module, "    coupon: str | None = None\n", "    coupon: str | None = None\n    gift: bool = False\n")
    result = run("check", module, "--schemas-dir", schemas)
    assert result.exit_code == 1
    assert "FAIL shop.cart the bump from version 3 to 4 has no migration" in result.output
    assert "FAIL shop.cart v4.json is not committed" in result.output
    generated = run("codegen", module, "--schemas-dir", schemas)
    assert generated.exit_code == 0, generated.output
    stub = (schemas / "shop.cart" / "migrate_v3_to_v4.py.txt").read_text()
    assert "#   compatible  .gift: added optional property (has a default)" in stub
    assert "        AddField('gift', False)," in stub
    assert "from_version=3," in stub
    module.write_text(module.read_text() + 'migration(cart, from_version=3, ops=[AddField("gift", False)])\n')
    assert run("codegen", module, "--schemas-dir", schemas).exit_code == 0
    assert not (schemas / "shop.cart" / "migrate_v3_to_v4.py.txt").exists(), "the stub goes once declared"
    passed = run("check", module, "--schemas-dir", schemas)
    assert passed.exit_code == 0, passed.output


def test_a_migration_whose_output_does_not_fit_fails_on_the_committed_examples(
    app: tuple[Path, Path],
) -> None:
    module, schemas = app
    edit(
        module,
        "    return int(decimal.Decimal(text).scaleb(2).to_integral_exact())",
        "    return text  # type: ignore",
    )
    result = run("check", module, "--schemas-dir", schemas)
    assert result.exit_code == 1
    assert (
        "example 1 of v2 migrated to v3 does not fit v3.json at .total: '3.20' is not of type 'integer'"
        in (result.output.replace("\n", " "))
    )


def test_a_key_gone_without_a_successor_fails_until_retired(app: tuple[Path, Path]) -> None:
    module, schemas = app
    edit(module, 'key="shop.cart"', 'key="shop.basket"')
    result = run("check", module, "--schemas-dir", schemas)
    assert result.exit_code == 1
    assert "FAIL shop.cart has committed schemas in " in result.output
    assert "no app module checked declares it" in result.output
    assert "FAIL shop.basket has no committed schema" in result.output
    assert "hint: no key is both declared and committed" in result.output  # or another app's directory
    module.write_text(
        module.read_text()
        + '\nfrom solara_persisted.migrations import retired\n\nretired("shop.cart", successor="shop.basket")\n'
    )
    result = run("check", module, "--schemas-dir", schemas)
    assert "shop.cart has committed schemas" not in result.output
    assert "shop.cart: retired (v1, v2, v3 committed, not declared)" in result.output
    assert "hint:" not in result.output


def schema(tp: Any, default: Any) -> dict[str, Any]:
    with registry.isolated():
        return schema_document(persisted_family("t.{x}", type=tp, default=default).spec)


def verdicts(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c.path, c.verdict, c.reason) for c in diff(old, new)]


def test_changes_are_classified_by_whether_stored_data_still_fits(tmp_path: Path) -> None:
    module = tmp_path / "shapes.py"
    module.write_text(
        "from __future__ import annotations\nimport attrs\nfrom typing import Literal\n\n"
        "@attrs.frozen\nclass A:\n    a: int\n    b: str = ''\n    c: Literal['x', 'y'] = 'x'\n\n"
        "@attrs.frozen\nclass B:\n    a: float\n    e: int\n    c: Literal['x'] = 'x'\n    d: int = 0\n"
    )
    (shapes,) = load_apps([str(module)])
    old, new = schema(shapes.A, shapes.A(1)), schema(shapes.B, shapes.B(1.0, 0))
    assert sorted(verdicts(old, new)) == [
        (".a", "compatible", "widened from integer to number"),
        (".b", "breaking", "property removed: stored objects that have it are refused"),
        (".c", "breaking", 'values removed: "y"'),
        (".d", "compatible", "added optional property (has a default)"),
        (".e", "breaking", "new required property without a default: stored objects lack it"),
    ]
    assert verdicts(schema(list[int], []), schema(list[str], [])) == [
        ("[]", "breaking", "type changed from integer to string")
    ]
    assert verdicts(schema(list[int], []), schema(set[int], set())) == [
        ("(root)", "breaking", "items must now be unique (list became a set)")
    ]
    assert verdicts(schema(int, 0), schema(int | None, 0)) == [
        ("(root)", "compatible", "alternative null added")
    ]


def test_key_directories_are_portable_and_cannot_escape() -> None:
    assert key_dirname("shop.cart") == "shop.cart"
    assert key_dirname("user:{uid}:query") == "user%3A%7Buid%7D%3Aquery"
    assert key_dirname("../etc") == "%2E.%2Fetc"
    assert key_dirname("..") == "%2E."
