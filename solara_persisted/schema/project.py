"""``[tool.solara-persisted]`` in the nearest ``pyproject.toml``: the app modules and the schema
and goldens directories that the CLI and the pytest plugin share, so both read one place."""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Any

import attrs

from ..errors import ProjectFileError
from .apps import display_path

PYPROJECT = "pyproject.toml"
#: The keys of ``[tool.solara-persisted]``: the app modules (dotted names or .py paths) and the
#: two directories, paths relative to the pyproject.toml.
PROJECT_KEYS = ("apps", "schemas-dir", "goldens-dir")


@attrs.frozen
class Project:
    """Where the apps and directories come from: ``[tool.solara-persisted]``, else defaults.

    Paths in the table are relative to its ``pyproject.toml``, so a command works from any
    directory of the project; without a table the defaults are relative to where the search began.
    """

    root: Path
    source: Path | None = None
    apps: tuple[str, ...] = ()
    schemas_dir: Path = Path("schemas")
    goldens_dir: Path = Path("goldens")

    @classmethod
    def find(cls, start: Path) -> Project:
        """The nearest ``pyproject.toml`` from ``start`` upwards that has the table (as ruff looks for its own)."""
        for directory in (start, *start.parents):
            path = directory / PYPROJECT
            if path.is_file():
                table = _project_table(path)
                if table is not None:
                    return cls._parse(path, table)
        return cls(root=start, schemas_dir=start / "schemas", goldens_dir=start / "goldens")

    @classmethod
    def _parse(cls, path: Path, table: dict[str, Any]) -> Project:
        where = f"[tool.solara-persisted] in {display_path(path)}"
        for key in table:
            if key not in PROJECT_KEYS:
                close = difflib.get_close_matches(key, PROJECT_KEYS, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"the keys are {', '.join(PROJECT_KEYS)}"
                raise ProjectFileError(f"{where} has an unknown key {key!r}", hint)
        apps = table.get("apps", [])
        if not isinstance(apps, list) or not all(isinstance(a, str) and a for a in apps):
            raise ProjectFileError(
                f"{where}: apps must be a list of module names or .py paths", 'apps = ["myapp/state.py"]'
            )
        dirs = {}
        for key in ("schemas-dir", "goldens-dir"):
            value = table.get(key, key.removesuffix("-dir"))
            if not isinstance(value, str) or not value:
                raise ProjectFileError(f"{where}: {key} must be a path", f'{key} = "{key.removesuffix("-dir")}"')
            dirs[key] = path.parent / value
        root = path.parent
        resolved = tuple(str(root / a) if is_path(a) else a for a in apps)
        return cls(root, path, resolved, dirs["schemas-dir"], dirs["goldens-dir"])

    def describe(self) -> str:
        return f" (from [tool.solara-persisted] in {display_path(self.source)})" if self.source else ""


def _project_table(path: Path) -> dict[str, Any] | None:
    text = path.read_text(encoding="utf-8")
    if "solara-persisted" not in text:
        return None  # not ours: no need to parse it (or to have a TOML parser)
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ProjectFileError(
                f"reading [tool.solara-persisted] in {display_path(path)} needs a TOML parser",
                "use Python 3.11 or later, or `pip install tomli`",
            ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProjectFileError(f"{display_path(path)} is not valid TOML ({error})", "fix the file") from error
    table = data.get("tool", {}).get("solara-persisted")
    if table is not None and not isinstance(table, dict):
        raise ProjectFileError(
            f"tool.solara-persisted in {display_path(path)} is not a table",
            "write it as [tool.solara-persisted]",
        )
    return table


def is_path(target: str) -> bool:
    """Whether an app target names a file (``.py`` or a path), not a dotted module name."""
    return target.endswith(".py") or "/" in target or os.sep in target
