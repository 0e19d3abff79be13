"""The ``solara-persisted`` command as a person and a CI job meet it.

``--version`` and ``-h``; help summaries that are not cut; every refusal one line naming the fix
(a missing file, an app that fails to import, the wrong module, a missing schemas directory),
exit 2 so CI tells "the gate never ran" from "the gate failed"; ``check`` never passing on nothing;
the project's ``[tool.solara-persisted]`` table; and the report's formats for a CI log, a program
and GitHub Actions. Real click, real app modules written to disk, real schema files: no mocks.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from solara_persisted.cli import main
from solara_persisted.spec import registry

CLI = Path(sys.executable).with_name("solara-persisted")

STATE = """\
import attrs

from solara_persisted import persisted


@attrs.frozen
class Prefs:
    theme: str = "light"
    size: int = 12


@persisted(key="app.prefs", version=1)
def prefs() -> Prefs:
    return Prefs()
"""
PYPROJECT = """\
[project]
name = "myapp"

[tool.solara-persisted]
apps = ["myapp/state.py"]
schemas-dir = "state-schemas"
goldens-dir = "state-goldens"
"""


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    with registry.isolated():
        yield


def run(*args: str | Path) -> Result:
    """One invocation, as a fresh process would see the registry: empty before it loads the apps."""
    with registry.isolated():
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with its app, its table in pyproject.toml and its committed schemas; the cwd."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "state.py").write_text(STATE)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    monkeypatch.chdir(tmp_path)
    generated = run("codegen")
    assert generated.exit_code == 0, generated.output
    assert (tmp_path / "state-schemas" / "app.prefs" / "v1.json").is_file()
    return tmp_path


def refusal(result: Result) -> str:
    """The one line a refusal prints; fails unless it is exactly one line on stderr with exit 2."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and ". Fix: " in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------- the command itself


def test_version_and_short_help_option() -> None:
    version = run("--version")
    assert version.exit_code == 0
    assert version.output == f"solara-persisted, version {importlib.metadata.version('solara-persisted')}\n"
    for args in (["-h"], ["--help"], *([name, "-h"] for name in main.commands)):
        shown = run(*args)
        assert shown.exit_code == 0, (args, shown.output)
        assert shown.output.startswith("Usage: solara-persisted"), shown.output


def test_command_summaries_are_not_cut() -> None:
    listing = run("--help").output.split("\nCommands:\n", 1)[1]
    summaries = dict(re.findall(r"^  ([a-z][\w-]*)\s+(.+)$", listing, re.MULTILINE))
    assert summaries.keys() == main.commands.keys(), listing
    for name, summary in summaries.items():
        assert not summary.endswith("..."), f"{name}: {summary!r} is cut; shorten its short_help"
        assert summary == main.commands[name].short_help, (name, summary)


# --------------------------------------------------------------------------- refusals in one line


BROKEN_APPS = {
    "raises": (
        'import os\n\nSETTING = os.environ["NO_SUCH_SETTING_FOR_THIS_TEST"]\n',
        "broken.py:3: KeyError",
    ),
    "syntax": ("def page(:\n    pass\n", "broken.py:1: SyntaxError: invalid syntax"),
    "dependency": ("import no_such_dependency_xyz\n", "broken.py:1: ModuleNotFoundError"),
    "exits": (
        "import sys\n\nsys.exit('configure me first')\n",
        "broken.py:3: SystemExit: configure me first",
    ),
}


@pytest.mark.parametrize("command", ["codegen", "check", "golden"])
@pytest.mark.parametrize("case", sorted(BROKEN_APPS))
def test_an_app_that_fails_to_import_is_one_line_naming_the_line(
    command: str, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source, expected = BROKEN_APPS[case]
    (tmp_path / "broken.py").write_text(source)
    line = refusal(run(command, "broken.py", "--schemas-dir", tmp_path))
    assert f"importing broken.py failed at {expected}" in line, line
    assert "Fix: fix the app; `python broken.py` shows the whole traceback" in line


@pytest.mark.parametrize("command", ["codegen", "check", "golden"])
def test_a_missing_file_a_directory_or_an_unknown_module_is_one_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "apps").mkdir()
    assert "missing.py: no such file" in refusal(run(command, "missing.py"))
    assert "apps/missing.py: no such file" in refusal(run(command, "apps/missing.py"))
    assert "apps is a directory" in refusal(run(command, "apps"))
    line = refusal(run(command, "no_such_module_xyz"))
    assert f"no module named 'no_such_module_xyz' is importable from {tmp_path}" in line


def test_no_apps_and_no_project_table_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for command in ("codegen", "check", "golden"):
        line = refusal(run(command))
        assert "no app modules given. Fix: pass APP_MODULE..." in line
        assert "[tool.solara-persisted] in pyproject.toml" in line


def test_a_refusal_from_the_installed_command_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CLI), "check", "missing.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("Error: missing.py: no such file"), done.stderr


# --------------------------------------------------------------------------- check cannot pass on nothing


def test_check_refuses_apps_that_declare_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schemas").mkdir()
    (tmp_path / "empty.py").write_text("import solara_persisted  # noqa: F401\n")
    for app in ("os", "empty.py"):  # the wrong module, and a module without declarations
        line = refusal(run("check", app))
        assert f"{app} declares no persisted spec (@persisted or persisted_family): nothing to check" in line
        assert "or --allow-empty for a project that has none yet" in line
    for command in ("codegen", "golden"):  # writing nothing for the wrong module is no success either
        assert "nothing to check" in refusal(run(command, "os"))


def test_check_refuses_persist_true_reactives_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schemas").mkdir()
    (tmp_path / "untyped.py").write_text(
        "import solara\n\nimport solara_persisted  # noqa: F401\n\n"
        'count = solara.reactive(0, persist=True, key="untyped.count")\n'
    )
    line = refusal(run("check", "untyped.py"))
    assert "untyped.py declares no typed persisted spec, only 1 persist=True reactive" in line


def test_check_refuses_a_schemas_directory_that_does_not_exist(project: Path) -> None:
    line = refusal(run("check", "--schemas-dir", "no-such-dir"))
    assert "the schemas directory no-such-dir does not exist" in line
    assert "run `solara-persisted codegen`" in line
    (project / "a-file").write_text("")
    assert "the schemas directory a-file is a file" in refusal(run("check", "--schemas-dir", "a-file"))


def test_allow_empty_passes_a_first_commit_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.py").write_text("x = 1\n")
    first = run("check", "empty.py", "--allow-empty")
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[-2:] == ["0 keys: none", "check passed"]
    # committed schemas nobody declares any more are problems, --allow-empty or not
    (tmp_path / "state.py").write_text(STATE)
    assert run("codegen", "state.py").exit_code == 0
    gone = run("check", "empty.py", "--allow-empty")
    assert gone.exit_code == 1, gone.output
    assert "FAIL app.prefs has committed schemas in schemas/" in gone.output
    # and declared specs without a schemas directory still fail
    missing = run("check", "state.py", "--allow-empty", "--schemas-dir", "elsewhere")
    assert "the schemas directory elsewhere does not exist" in refusal(missing)


def test_a_schema_file_codegen_did_not_write_is_one_line(project: Path) -> None:
    (project / "state-schemas" / "app.prefs" / "v1.json").write_text("{not json")
    line = refusal(run("check"))
    assert "state-schemas/app.prefs/v1.json is not a schema codegen wrote" in line


# --------------------------------------------------------------------------- [tool.solara-persisted]


def test_a_bare_check_uses_the_project_table_from_any_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passed = run("check")
    assert passed.exit_code == 0, passed.output
    assert passed.output.splitlines() == [
        "checking myapp/state.py against state-schemas/ (from [tool.solara-persisted] in pyproject.toml)",
        "app.prefs: unchanged (v1 committed, v1 declared)",
        "1 key: 1 unchanged",
        "check passed",
    ]
    monkeypatch.chdir(project / "myapp")  # paths in the table are relative to pyproject.toml
    nested = run("check")
    assert nested.exit_code == 0, nested.output
    assert nested.output.startswith(f"checking state.py against {project}/state-schemas/ (from ")


def test_dotted_module_names_in_the_table_import_from_the_project_root(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT.replace('"myapp/state.py"', '"myapp.state"'))
    monkeypatch.chdir(project / "myapp")
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "1 key: 1 unchanged" in result.output
    sys.modules.pop("myapp.state", None)
    sys.modules.pop("myapp", None)


def test_command_line_values_override_the_table(project: Path) -> None:
    (project / "other.py").write_text(STATE.replace("app.prefs", "other.prefs"))
    refused = run("check", "other.py")  # other apps, the table's schemas: no such key there
    assert refused.exit_code == 1
    assert "FAIL other.prefs has no committed schema" in refused.output
    assert "hint: no key is both declared and committed in state-schemas/" in refused.output
    assert run("codegen", "other.py", "--schemas-dir", "other-schemas").exit_code == 0
    passed = run("check", "other.py", "--schemas-dir", "other-schemas")
    assert passed.exit_code == 0, passed.output
    assert passed.output.startswith("checking other.py against other-schemas/\n")


def test_codegen_and_golden_use_the_table_directories(project: Path) -> None:
    again = run("codegen")
    assert again.exit_code == 0, again.output
    assert "unchanged state-schemas/app.prefs/v1.json" in again.output
    golden = run("golden")
    assert golden.exit_code == 0, golden.output
    assert "wrote state-goldens/app.prefs/v1.json" in golden.output
    assert (
        project / "state-goldens" / "app.prefs" / "v1.json"
    ).read_text() == '{"theme":"light","size":12}\n'


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('schema-dir = "x"', "has an unknown key 'schema-dir'. Fix: did you mean 'schemas-dir'?"),
        ('apps = "myapp/state.py"', "apps must be a list of module names or .py paths"),
        ("schemas-dir = 3", "schemas-dir must be a path"),
        ("apps = [", "pyproject.toml is not valid TOML"),
    ],
)
def test_a_wrong_table_is_one_line(project: Path, table: str, expected: str) -> None:
    (project / "pyproject.toml").write_text(f"[tool.solara-persisted]\n{table}\n")
    assert expected in refusal(run("check"))


def test_explicit_values_never_read_the_table(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.solara-persisted]\napps = [\n")  # broken, and unused
    result = run("check", "myapp/state.py", "--schemas-dir", "state-schemas")
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- formats


@pytest.fixture
def drifted(project: Path) -> Path:
    """The app changed a field's type without a version bump: one problem, at the declaration."""
    state = project / "myapp" / "state.py"
    state.write_text(STATE.replace("size: int = 12", "size: str = '12'"))
    return state


def test_plain_lines_off_a_terminal(drifted: Path) -> None:
    result = run("check")
    assert result.exit_code == 1
    assert not set(result.output) & set("┏┃│━─┗"), "no table off a terminal"
    assert result.output.splitlines() == [
        "checking myapp/state.py against state-schemas/ (from [tool.solara-persisted] in pyproject.toml)",
        "app.prefs: changed without a version bump (v1 committed, v1 declared)",
        "  v1 (unbumped) .size: breaking: type changed from integer to string",
        "FAIL app.prefs the shape of version 1 changed without a version bump (breaking .size: type changed "
        "from integer to string). Fix: declare version=2 with a migration from 1, or (for a version never "
        "deployed) rerun codegen with --force",
        "1 key: 1 changed without a version bump",
        "check failed: 1 problem",
    ]


def test_json_for_a_program(drifted: Path) -> None:
    drifted.write_text(drifted.read_text() + "\nprint('the app prints while importing')\n")
    result = run("check", "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)  # what the app printed went to stderr
    assert "the app prints while importing" in result.stderr
    assert report["ok"] is False
    assert report["summary"] == "1 key: 1 changed without a version bump"
    (key,) = report["keys"]
    assert (key["key"], key["status"], key["committed"], key["declared"]) == ("app.prefs", "drifted", [1], 1)
    assert key["changes"] == [
        {
            "versions": "v1 (unbumped)",
            "path": ".size",
            "verdict": "breaking",
            "covered_by_migration": False,
            "reason": "type changed from integer to string",
        }
    ]
    (problem,) = report["problems"]
    assert problem["site"] == "myapp/state.py:12"
    refused = run("check", "os", "--format", "json")
    assert refused.exit_code == 2
    assert json.loads(refused.stdout)["error"].startswith("os declares no persisted spec")


def test_github_annotations_point_at_the_declaration(drifted: Path) -> None:
    result = run("check", "--format", "github")
    assert result.exit_code == 1
    (annotation,) = [line for line in result.output.splitlines() if line.startswith("::")]
    assert annotation.startswith(
        "::error file=myapp/state.py,line=12,title=solara-persisted check%3A app.prefs::"
        "app.prefs the shape of version 1 changed without a version bump"
    ), annotation
    assert "FAIL" not in result.output  # each problem once, as its annotation
    assert result.output.splitlines()[-1] == "check failed: 1 problem"
    refused = run("check", "missing.py", "--format", "github")
    assert refused.stdout.startswith("::error title=solara-persisted check::missing.py: no such file")


def test_the_table_for_a_terminal_says_a_covered_breaking_change_is_migrated() -> None:
    root = Path(__file__).resolve().parents[1]
    result = run(
        "check",
        root / "examples" / "shop" / "state.py",
        "--schemas-dir",
        root / "examples" / "shop" / "schemas",
        "--format",
        "table",
    )
    assert result.exit_code == 0, result.output
    assert "migrated" in result.output  # a breaking change, covered (yellow, not red)
    assert "┃ key" in result.output
    assert result.output.splitlines()[-2:] == [
        "1 key: 1 evolved (shop.cart v2→v3: breaking .total, covered by migration)",
        "check passed",
    ]
