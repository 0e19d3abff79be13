"""Loading the app whose declarations the schema tools read: a ``.py`` path or a dotted module.

An app that cannot be imported is an ``AppLoadError`` naming the app's own line that raised, so
the person running ``check`` in CI sees the cause, not importlib's frames.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from ..errors import AppLoadError

__all__ = ["display_path", "load_apps"]


def load_apps(targets: Iterable[str], *, search_path: Path | None = None) -> list[ModuleType]:
    """Import each app module (a dotted name or a ``.py`` path) so its declarations register.

    A file is executed afresh under a private module name each time, so a second load (``check``
    after ``codegen`` in one process, a test) registers its specs again. ``search_path`` (default:
    the current directory) goes on ``sys.path`` first, as ``python -m`` does, so app packages
    import. A missing file or module, or an app whose import raises, is an ``AppLoadError``.
    """
    where = str(search_path or Path.cwd())
    if where not in sys.path:
        sys.path.insert(0, where)
    return [_load(target, where) for target in targets]


def _load(target: str, where: str) -> ModuleType:
    path = Path(target)
    if path.is_dir():
        raise AppLoadError(f"{target} is a directory", "pass the .py file that declares the specs")
    if target.endswith(".py") or path.exists() or os.sep in target or "/" in target:
        if not path.is_file():
            raise AppLoadError(
                f"{target}: no such file (looked in {Path.cwd()})",
                "pass the path of the module that declares the specs, or its dotted module name",
            )
        resolved = path.resolve()
        name = f"_solara_persisted_app_{abs(hash(str(resolved))):x}"
        spec = importlib.util.spec_from_file_location(name, resolved)
        if spec is None or spec.loader is None:
            raise AppLoadError(f"{target} is not a Python module", "pass a .py file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # attrs and dataclasses resolve annotations through it
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as error:
            del sys.modules[name]
            raise _import_failed(target, error, f"`python {target}` shows the whole traceback") from error
        return module
    try:
        if target in sys.modules:
            return importlib.reload(sys.modules[target])
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name is not None and (target == error.name or target.startswith(f"{error.name}.")):
            raise AppLoadError(
                f"no module named {target!r} is importable from {where}",
                "pass the app's .py path, or its dotted name as seen from the project's root",
            ) from error
        raise _import_failed(
            target, error, f'`python -c "import {target}"` shows the whole traceback'
        ) from error
    except (Exception, SystemExit) as error:
        raise _import_failed(
            target, error, f'`python -c "import {target}"` shows the whole traceback'
        ) from error


def _import_failed(target: str, error: BaseException, how: str) -> AppLoadError:
    """One line for an app that raised while importing: the exception and the app's own line that raised it."""
    if isinstance(error, SyntaxError) and error.filename:
        at = f"{display_path(error.filename)}:{error.lineno}"
        message = error.msg
    else:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith("<")]
        at = f"{display_path(frames[-1].filename)}:{frames[-1].lineno}" if frames else target
        message = str(error)
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return AppLoadError(f"importing {target} failed at {at}: {text}", f"fix the app; {how}")


def display_path(path: str | os.PathLike[str]) -> str:
    """A path relative to the current directory when it is under it, as a person there would type it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
