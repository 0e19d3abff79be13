"""The plugin as an app gets it from its entry point, in a separate pytest run: goldens stay byte-for-byte
what was committed through ``--snapshot-update``, and a run that rewrites one fails and has it put back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "shop" / "state.py"
GOLDENS = ROOT / "examples" / "shop" / "goldens"
ADDED_FIELD = 'AddField("coupon", None)'
#: Plugins the nested runs do not use, kept out to save their start-up time (about a second each run).
UNUSED = "-p no:hypothesispytest -p no:pytest_redis -p no:anyio"


def goldens_of(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*.json"))}


@pytest.fixture
def app(pytester: pytest.Pytester) -> Path:
    """An app project: the shop's state module, its goldens in a folder of its own, one snapshot test."""
    shutil.copy(EXAMPLE, pytester.path / "shop_state.py")
    shutil.copytree(GOLDENS, pytester.path / "fixtures" / "goldens")
    pytester.makeini(f"[pytest]\naddopts = {UNUSED}\npersisted_goldens = fixtures/goldens\n")
    pytester.makeconftest("import shop_state  # noqa: F401  (declares the persisted specs)\n")
    pytester.makepyfile(
        test_restores="""
        def test_old_state_restores(persisted_restores, snapshot):
            persisted_restores.assert_match(snapshot)
        """
    )
    return pytester.path


def test_snapshot_update_follows_a_changed_migration_but_never_rewrites_goldens(
    pytester: pytest.Pytester, app: Path
) -> None:
    committed = goldens_of(GOLDENS)
    created = pytester.runpytest_subprocess("--snapshot-update")
    created.assert_outcomes(passed=1)
    snapshots = app / "__snapshots__" / "test_restores"
    v1 = snapshots / "test_old_state_restores[shop.cart@v1].json"
    assert '"coupon": null' in v1.read_text()

    # The step 2 -> 3 now fills in another coupon: what v1 and v2 restore to changes, v3 does not.
    module = app / "shop_state.py"
    module.write_text(module.read_text().replace(ADDED_FIELD, 'AddField("coupon", "WELCOME")'))
    failed = pytester.runpytest_subprocess()
    failed.assert_outcomes(failed=1)
    output = failed.stdout.str()
    assert "shop.cart@v1" in output and "shop.cart@v2" in output and "shop.cart@v3 (" not in output
    assert "does not match its snapshot" in output and '-     "coupon": null,' in output

    updated = pytester.runpytest_subprocess("--snapshot-update")
    updated.assert_outcomes(passed=1)
    assert '"coupon": "WELCOME"' in v1.read_text()
    assert goldens_of(app / "fixtures" / "goldens") == committed


def test_a_golden_rewritten_during_a_run_fails_it_and_is_put_back(
    pytester: pytest.Pytester, app: Path
) -> None:
    pytester.makepyfile(
        test_rogue="""
        from pathlib import Path

        def test_regenerates_a_golden():
            Path("fixtures/goldens/shop.cart/v1.json").write_text('{"skus":[],"total":0}')
            Path("fixtures/goldens/shop.cart/v2.json").unlink()
        """
    )
    result = pytester.runpytest_subprocess("--snapshot-update")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*solara-persisted goldens*",
            "*shop.cart/v1.json was rewritten during the test session and has been put back",
            "*shop.cart/v2.json was deleted during the test session and has been put back",
        ]
    )
    assert goldens_of(app / "fixtures" / "goldens") == goldens_of(GOLDENS)


def test_without_the_ini_option_the_goldens_are_where_the_cli_writes_them(pytester: pytest.Pytester) -> None:
    """``goldens-dir`` of ``[tool.solara-persisted]`` is where ``solara-persisted golden`` writes; the
    plugin reads the same place unless ``persisted_goldens`` says otherwise."""
    shutil.copy(EXAMPLE, pytester.path / "shop_state.py")
    shutil.copytree(GOLDENS, pytester.path / "fixtures" / "goldens")
    pytester.makepyprojecttoml(
        f'[tool.pytest.ini_options]\naddopts = "{UNUSED}"\n\n'
        '[tool.solara-persisted]\napps = ["shop_state.py"]\ngoldens-dir = "fixtures/goldens"\n'
    )
    pytester.makeconftest("import shop_state  # noqa: F401  (declares the persisted specs)\n")
    pytester.makepyfile(
        test_restores="""
        def test_dir(persisted_goldens_dir):
            assert persisted_goldens_dir.relative_to(persisted_goldens_dir.parents[1]).as_posix() == "fixtures/goldens"

        def test_old_state_restores(persisted_restores, snapshot):
            persisted_restores.assert_match(snapshot)
        """
    )
    pytester.runpytest_subprocess("--snapshot-update").assert_outcomes(passed=2)
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_a_broken_project_table_is_one_line_naming_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        f'[tool.pytest.ini_options]\naddopts = "{UNUSED}"\n\n[tool.solara-persisted]\ngolden-dir = "x"\n'
    )
    pytester.makepyfile(
        test_restores="""
        def test_old_state_restores(persisted_restores, snapshot):
            persisted_restores.assert_match(snapshot)
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*[[]tool.solara-persisted[]] in *pyproject.toml has an unknown key 'golden-dir'. Fix: did you mean 'goldens-dir'?"]
    )
