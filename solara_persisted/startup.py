"""Start-up: settings Solara parses before any app code runs, and refusing to start in one line.

Solara (1.58 to 1.64) converts some variables we document with its own types when
``solara.server.settings`` is imported, before the app (and so solara-persisted) is loaded: a
spelling our guide recommends (``SOLARA_STATE_CONNECT_TIMEOUT=300ms``, ``..._MAX_VALUE_BYTES=5MB``,
a boolean written ``yes``) crashed it with a bare ``ValueError`` naming no variable. The
start-up shim (``_solara_persisted_startup``, installed by ``solara_persisted_startup.pth``) calls
``prepare_environment()`` right before that import: every value our parser accepts is rewritten
to the plain form Solara reads the same way (``300ms`` -> ``0.3``), and a value both refuse gets
our one-line message. Standard library only: the shim loads this file without the package.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, MutableMapping
from typing import NoReturn

from .errors import ConfigError
from .parsing import parse_bool, parse_duration, parse_fraction, parse_int, parse_size

#: Exit status of a refused start: uvicorn's own start-up failure code, and the code that makes a
#: gunicorn master stop ("worker failed to boot") instead of respawning the worker in a loop.
EXIT_REFUSED = 3
#: Programs whose process is a server: a refusal there ends the process, as the server would.
SERVER_PROGRAMS = frozenset({"solara", "uvicorn", "gunicorn", "hypercorn"})

_SOLARA_TRUE = ("True", "true", "1")
_SOLARA_FALSE = ("False", "false", "0")


def _solara_bool(raw: str) -> bool:
    """``solara.minisettings.convert`` for ``bool``: exactly these six spellings."""
    if raw in _SOLARA_TRUE:
        return True
    if raw in _SOLARA_FALSE:
        return False
    raise ValueError(raw)


def _solara_timedelta(raw: str) -> float:
    """``solara.util.parse_timedelta``, which Solara runs on the kernel cull timeout at import."""
    for unit, seconds in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if raw.endswith(unit):
            return float(raw[: -len(unit)]) * seconds
    return float(raw)


def _plain_bool(value: object) -> str:
    return "true" if value else "false"


# variable: (our parser, Solara's conversion, our value -> the text Solara reads as the same value).
# Every non-text setting of Solara's that our guide documents; the text-typed ones (the durations
# other than these two, the URL, keys, prefix, tag, mode, token) are not converted at import.
Rule = tuple[Callable[[str, str], object], Callable[[str], object], Callable[[object], str]]
SOLARA_PARSED: dict[str, Rule] = {
    "SOLARA_STATE_ALLOW_PICKLE": (parse_bool, _solara_bool, _plain_bool),
    "SOLARA_STATE_AUTO_REMOUNT": (parse_bool, _solara_bool, _plain_bool),
    "SOLARA_STATE_TEST_EVICTION": (parse_bool, _solara_bool, _plain_bool),
    "SOLARA_SESSION_HTTP_ONLY": (parse_bool, _solara_bool, _plain_bool),
    "SOLARA_STATE_CONNECT_TIMEOUT": (parse_duration, float, repr),
    "SOLARA_KERNEL_CULL_TIMEOUT": (parse_duration, _solara_timedelta, repr),
    "SOLARA_STATE_BREAKER_FAILURES": (lambda name, raw: parse_int(name, raw, minimum=1), int, str),
    "SOLARA_KERNEL_MAX_PER_SESSION": (lambda name, raw: parse_int(name, raw, minimum=0), int, str),
    "SOLARA_STATE_WARN_VALUE_BYTES": (parse_size, int, str),
    "SOLARA_STATE_MAX_VALUE_BYTES": (parse_size, int, str),
    "SOLARA_STATE_BAILOUT_STORM_THRESHOLD": (parse_fraction, float, repr),
}


def solara_spellings(environ: MutableMapping[str, str]) -> dict[str, str | None]:
    """What to change in ``environ`` before Solara reads it: a name -> its new text, or None to unset.

    Solara matches names in any case, so ``solara_state_connect_timeout`` counts too. An empty
    value is unset for us and a crash for Solara: it is removed. A value our parser refuses but
    Solara reads is left for our start-up validation; one both refuse raises ``ConfigError``.
    """
    changes: dict[str, str | None] = {}
    for name in sorted(environ):
        rule = SOLARA_PARSED.get(name.upper())
        if rule is None:
            continue
        ours, solaras, plain = rule
        raw = environ[name]
        if not raw.strip():
            changes[name] = None
            continue
        try:
            text = plain(ours(name, raw))
        except ConfigError as refused:
            try:
                solaras(raw)
            except ValueError:
                raise refused from None  # ours names the variable and the fix; Solara's names neither
            continue
        if text != raw:
            changes[name] = text
    return changes


def prepare_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str | None]:
    """Rewrite the variables Solara is about to parse; refuse (server) or raise (elsewhere) on a bad one."""
    env = os.environ if environ is None else environ
    try:
        changes = solara_spellings(env)
    except ConfigError as error:
        if server_program() is None:
            raise
        refuse(error)
    for name, text in changes.items():
        if text is None:
            del env[name]
        else:
            env[name] = text
    return changes


def server_program() -> str | None:
    """``solara``, ``uvicorn``, ``gunicorn`` or ``hypercorn`` when this process was started as one
    (its console script or ``python -m``), else None (tests, notebooks, your own launcher).

    Read from the command line, not ``__main__``: Solara's server replaces that module, and under
    ``python -m solara`` this runs while ``sys.argv[0]`` still reads ``-m``.
    """
    program = _module_run(getattr(sys, "orig_argv", [])[1:])
    if program is None:
        script = sys.argv[0] if sys.argv else ""
        program = os.path.basename(script)
        if program == "__main__.py":  # python path/to/package
            program = os.path.basename(os.path.dirname(script))
        program = program.removesuffix(".exe").removesuffix("-script.py")
    program = program.partition(".")[0]
    return program if program in SERVER_PROGRAMS else None


def _module_run(interpreter_args: list[str]) -> str | None:
    """The module of ``python [options] -m module ...``, None when Python runs a script or ``-c``."""
    args = iter(interpreter_args)
    for arg in args:
        if arg == "-m":
            return next(args, "")
        if arg.startswith("-m"):
            return arg[2:]
        if arg in ("-X", "-W"):  # options whose value is the next argument
            next(args, None)
        elif arg == "-c" or not arg.startswith("-"):
            return None
    return None


def refuse(error: ConfigError) -> NoReturn:
    """Print ``error`` as its one line on stderr and end the process with ``EXIT_REFUSED`` now.

    ``os._exit``, not an exception: above us, uvicorn and Starlette would print the exception as a
    forty-line traceback, and a refusal happens before anything is served, so nothing is lost.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed or missing: nothing to keep
            stream.flush()
    if "logging" in sys.modules:  # lines logged before the refusal (warnings) come first
        sys.modules["logging"].shutdown()
    try:
        sys.stderr.write(f"{error}\n")
        sys.stderr.flush()
    finally:
        os._exit(EXIT_REFUSED)
