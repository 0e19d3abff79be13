"""solara-persisted's start-up shim, imported at interpreter start by ``solara_persisted_startup.pth``.

Solara converts some ``SOLARA_STATE_*`` (and ``SOLARA_SESSION_HTTP_ONLY``, ``SOLARA_KERNEL_*``)
variables with its own types while ``solara.server.settings`` is imported: before the app, so
before ``solara_persisted`` can say anything. This module only puts a finder first on
``sys.meta_path`` (no other import, nothing else at start-up); the finder fires once, when that
module is about to be imported, in any process (``solara run``, uvicorn, a notebook, a test), and
runs ``solara_persisted.startup.prepare_environment`` there: our spellings become Solara's, a
value both refuse meets our one-line message. It loads that file and the parsers it uses from the
``solara_persisted`` directory as a private package, so the package's ``__init__`` (which imports
Solara) does not run before Solara's settings exist.
"""

import sys

_TRIGGER = "solara.server.settings"
_PRIVATE = "_solara_persisted_early"  # the private name the shim loads startup.py under


class BeforeSolaraSettings:
    """A meta-path finder that finds nothing: it only runs the check when Solara's settings load."""

    @classmethod
    def find_spec(cls, fullname: str, path: object = None, target: object = None) -> None:
        if fullname != _TRIGGER:
            return None
        try:
            sys.meta_path.remove(cls)  # once; a concurrent import may have removed it already
        except ValueError:
            return None
        _prepare()
        return None


def _prepare() -> None:
    import importlib
    import importlib.machinery
    import importlib.util

    try:
        found = importlib.util.find_spec("solara_persisted")  # a top-level name: nothing runs
        locations = found.submodule_search_locations if found is not None else None
        if not locations:
            return  # uninstalled behind the .pth's back: Solara on its own, as without us
        spec = importlib.machinery.ModuleSpec(_PRIVATE, None, is_package=True)
        spec.submodule_search_locations = list(locations)
        sys.modules[_PRIVATE] = importlib.util.module_from_spec(spec)
        startup = importlib.import_module(f"{_PRIVATE}.startup")
    except ModuleNotFoundError as error:
        if error.name != f"{_PRIVATE}.startup":
            raise
        return  # the solara_persisted on sys.path predates this check: Solara on its own, as it was
    except Exception as error:  # a broken install must not stop every import of Solara
        sys.stderr.write(f"solara-persisted: start-up check of Solara's settings skipped: {error!r}\n")
        return
    startup.prepare_environment()  # raises ConfigError (a ValueError) outside a server process


def install() -> None:
    """Put the finder first on ``sys.meta_path``, unless Solara's settings are already loaded."""
    if _TRIGGER not in sys.modules and BeforeSolaraSettings not in sys.meta_path:
        sys.meta_path.insert(0, BeforeSolaraSettings)


install()
