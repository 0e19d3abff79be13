"""The pytest plugin: every committed golden restores, and what it restores to is snapshotted.

Installed with the package (the ``pytest11`` entry point ``solara_persisted``), so an app's tests
only need::

    import myapp.state  # in conftest.py: registers the persisted specs

    def test_old_state_restores(persisted_restores, snapshot):
        persisted_restores.assert_match(snapshot)

Goldens (``<key>/v<N>.json`` under the ini option ``persisted_goldens``, else the ``goldens-dir``
of ``[tool.solara-persisted]`` that the CLI writes them to, else ``goldens``) are the immutable
inputs; the syrupy snapshot of each restored value is the output, updated with
``--snapshot-update`` like any snapshot. In a session that uses ``persisted_restores``, the plugin
puts back any golden that changed while it ran and fails the run, so nothing rewrites history.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .errors import ToolingError
from .schema.goldens import GoldenGuard, GoldenReport, restore_goldens
from .schema.project import Project
from .spec import Registry, registry

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion

__all__ = ["PersistedRestores"]

_GUARD = pytest.StashKey[GoldenGuard]()
_PUT_BACK = pytest.StashKey[list[str]]()
INI_GOLDENS = "persisted_goldens"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        INI_GOLDENS,
        "Directory of the committed solara-persisted goldens (<key>/v<N>.json), relative to the ini file "
        "(default: goldens-dir of [tool.solara-persisted], as the CLI writes them; else goldens).",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_GUARD] = GoldenGuard()


def _configured_goldens(config: pytest.Config) -> Path:
    """The ini option when set, else where ``solara-persisted golden`` writes: one place for both."""
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    configured = str(config.getini(INI_GOLDENS))
    if configured:
        return base / configured
    try:
        return Project.find(base).goldens_dir
    except ToolingError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Before any test runs, remember the goldens, but only in a session that restores them."""
    if any("persisted_restores" in getattr(item, "fixturenames", ()) for item in session.items):
        session.config.stash[_GUARD].watch(_configured_goldens(session.config))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After syrupy wrote its snapshots: put back any golden that changed, and fail the run."""
    lines = session.config.stash[_GUARD].put_back()
    session.config.stash[_PUT_BACK] = lines
    if lines:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_PUT_BACK, [])
    if not lines:
        return
    terminalreporter.write_sep("-", "solara-persisted goldens", red=True)
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(
        "Goldens are history: only `solara-persisted golden` adds one, for a new version, and nothing "
        "rewrites them. Snapshots of restored values (__snapshots__/) are what --snapshot-update changes."
    )


class PersistedRestores:
    """Restores committed goldens through the real engine (memory backend, a throwaway key ring)."""

    def __init__(self, registry: Registry, goldens_dir: Path) -> None:
        self.registry = registry
        self.goldens_dir = goldens_dir

    def report(self, key: str | None = None) -> GoldenReport:
        """Every golden of ``key`` (default: every declared key) restored, and every problem found."""
        keys: Iterable[str] | None = None if key is None else [key]
        return restore_goldens(self.registry, self.goldens_dir, keys=keys)

    def __call__(self, key: str | None = None) -> dict[str, dict[int, Any]]:
        """The declared-version value each golden restores to, by key and stored version.

        Fails the test, naming each key and version, when any golden does not restore.
        """
        report = self.report(key)
        if report.problems:
            _fail(report.problems)
        values: dict[str, dict[int, Any]] = {}
        for restored in report.restored:
            values.setdefault(restored.golden.key, {})[restored.golden.version] = restored.value
        return values

    def assert_match(self, snapshot: SnapshotAssertion, key: str | None = None) -> None:
        """Compare each restored value with its syrupy snapshot (JSON, named ``<key>@v<N>``)."""
        from syrupy.extensions.json import JSONSnapshotExtension
        from syrupy.terminal import disable_color

        report = self.report(key)
        problems = list(report.problems)
        json_snapshot = snapshot.use_extension(JSONSnapshotExtension)
        for restored in report.restored:
            label = restored.golden.label
            matched = json_snapshot(name=label) == restored.document()
            if not matched:
                with disable_color():  # the diff goes into a plain-text failure message
                    diff = "\n".join(f"    {line}" for line in json_snapshot.get_assert_diff())
                problems.append(
                    f"{label} ({restored.golden.path}) restores to a value that does not match its snapshot "
                    f"[{label}]: fix the migration, or accept the new value with --snapshot-update\n{diff}"
                )
        if problems:
            _fail(problems)


def _fail(problems: list[str]) -> None:
    pytest.fail("\n".join(["persisted goldens:", *(f"  - {p}" for p in problems)]), pytrace=False)


@pytest.fixture
def persisted_registry() -> Registry:
    """The specs whose goldens are restored: the global registry (override it to load yours)."""
    return registry


@pytest.fixture
def persisted_goldens_dir(request: pytest.FixtureRequest) -> Path:
    """Where the goldens live: the ini option ``persisted_goldens``, else the project table's
    ``goldens-dir`` (override the fixture for another place)."""
    return _configured_goldens(request.config)


@pytest.fixture
def persisted_restores(
    request: pytest.FixtureRequest, persisted_registry: Registry, persisted_goldens_dir: Path
) -> PersistedRestores:
    """Restore every committed golden through the real engine; see ``PersistedRestores``."""
    request.config.stash[_GUARD].watch(persisted_goldens_dir)
    return PersistedRestores(persisted_registry, persisted_goldens_dir)
