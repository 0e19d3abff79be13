"""The ``solara-persisted`` command.

Refusals are one line on stderr, the problem and then the fix, with exit status 2 (the command
could not run: a missing file, an app that fails to import, nothing declared). ``check`` exits 1
when it ran and found problems, so CI tells "the gate failed" from "the gate never ran". App
modules and directories come from the command line, else from ``[tool.solara-persisted]`` in the
nearest ``pyproject.toml``, so a bare ``solara-persisted check`` checks the project.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import click
from rich.console import Console

from .schema.apps import display_path
from .schema.project import Project, is_path

if TYPE_CHECKING:
    from .config import Settings
    from .ops.doctor import Connection
    from .schema.documents import Problem
    from .spec import Registry

#: The example app, when running from a checkout of the repository.
EXAMPLE_APP = Path(__file__).resolve().parents[1] / "examples" / "shop_app.py"
#: ``check --format``: ``auto`` is ``table`` on a terminal and ``plain`` anywhere else (a CI log).
FORMATS = ("auto", "table", "plain", "json", "github")


class CliError(click.ClickException):
    """A refusal in one line, ``problem. Fix: fix``; exit 2: the command could not do its job."""

    exit_code = 2

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(" ".join(f"{problem}. Fix: {fix}".split()))


# --------------------------------------------------------------------------- project configuration


@attrs.frozen
class Target:
    """What one run works on: the app modules, where to import them from, and the directories."""

    apps: tuple[str, ...]
    search_path: Path | None
    schemas_dir: Path
    goldens_dir: Path | None  # only for the commands that write goldens
    note: str  # where the apps came from, for the first line of output

    @property
    def shown_apps(self) -> str:
        return ", ".join(display_path(a) if is_path(a) else a for a in self.apps)


def resolve(
    apps: tuple[str, ...], schemas_dir: Path | None, goldens_dir: Path | None = None, *, goldens: bool = False
) -> Target:
    """Command-line values win; anything not given comes from the project's table (or the defaults).

    The project file is only read when something was not given, so a fully explicit command
    never depends on it.
    """
    project = functools.cache(_project)
    schemas = schemas_dir or project().schemas_dir
    goldens_at = (goldens_dir or project().goldens_dir) if goldens else None
    if apps:
        return Target(apps, None, schemas, goldens_at, "")
    if not project().apps:
        raise CliError(
            "no app modules given",
            "pass APP_MODULE... (dotted names or .py paths), or list them as apps = [...] under "
            "[tool.solara-persisted] in pyproject.toml",
        )
    return Target(project().apps, project().root, schemas, goldens_at, project().describe())


def _project() -> Project:
    """The project around the current directory; a broken table is a one-line refusal."""
    with refusals():
        return Project.find(Path.cwd())


@contextlib.contextmanager
def refusals(quiet: bool = False) -> Iterator[None]:
    """Turn the schema tooling's own errors (a missing app, a broken schema file) into one-line refusals.

    ``quiet`` sends what an app prints while importing to stderr, so it cannot corrupt a
    machine-readable report on stdout.
    """
    from .errors import ToolingError

    redirect = contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext()
    try:
        with redirect:
            yield
    except ToolingError as error:
        raise CliError(error.problem, error.fix) from error


def _load(target: Target, *, quiet: bool = False) -> Registry:
    """Import the app modules so their declarations register."""
    from .schema.apps import load_apps
    from .spec import registry

    with refusals(quiet):
        load_apps(target.apps, search_path=target.search_path)
    return registry


def _require_declarations(registry: Registry, target: Target, *, offer_allow_empty: bool = False) -> None:
    """An app that declares nothing is almost always the wrong module: refuse instead of passing vacuously."""
    if registry.specs() or registry.retired():
        return
    names = target.shown_apps
    untyped = registry.untyped()
    if untyped:
        problem = (
            f"{names} declares no typed persisted spec, only {len(untyped)} persist=True reactive"
            f"{'' if len(untyped) == 1 else 's'}, which have no schema"
        )
    else:
        problem = f"{names} declares no persisted spec (@persisted or persisted_family): nothing to check"
    fix = "pass the modules that declare the app's persisted state"
    if target.note:
        fix = "list the modules that declare the app's persisted state in apps = [...] of [tool.solara-persisted]"
    if offer_allow_empty:
        fix += ", or --allow-empty for a project that has none yet"
    raise CliError(problem, fix)


def _schemas_dir_check(schemas_dir: Path) -> None:
    if schemas_dir.exists() and not schemas_dir.is_dir():
        raise CliError(
            f"the schemas directory {display_path(schemas_dir)} is a file", "pass --schemas-dir DIRECTORY"
        )
    if not schemas_dir.exists():
        raise CliError(
            f"the schemas directory {display_path(schemas_dir)} does not exist",
            "run `solara-persisted codegen` for the same apps and commit what it writes, or pass "
            "--schemas-dir with the directory your schemas are in",
        )


# --------------------------------------------------------------------------- the commands


@click.group(name="solara-persisted", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="solara-persisted", prog_name="solara-persisted")
def main() -> None:
    """Persist Solara reactive state across instances.

    codegen, check, golden and sizing take the app modules (dotted names or .py paths) as
    arguments, or read them from [tool.solara-persisted] in pyproject.toml: apps = [...],
    schemas-dir, goldens-dir.
    """


@main.command(short_help="Serve the shop and fail it over (or --scripted, --fleet).")
@click.option("--scripted", is_flag=True, help="Run the narrated in-process failover instead of the app.")
@click.option(
    "--fleet",
    is_flag=True,
    help="A real fleet: local redis-server, two instances, a proxy on --port; Enter kills the serving one, q quits.",
)
@click.option("--app", "app", type=click.Path(path_type=Path), default=None, help="Serve this app instead.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0: any free port."
)
@click.option("--debounce", default=0.2, show_default=True, help="Write-behind debounce in seconds.")
def demo(scripted: bool, fleet: bool, app: Path | None, host: str, port: int, debounce: float) -> None:
    """Click through a failover: the shop app on the in-process memory backend.

    Change the filters, pick a product, fill in a step of the checkout, then press
    "Simulate failover": the kernel is dropped as if its instance died, the browser
    reconnects, and the page re-mounts in place with everything that was persisted.
    With --fleet the instance really dies: press Enter in the terminal to SIGKILL it, q to quit.
    """
    console = Console()
    if scripted and fleet:
        raise CliError("--scripted and --fleet are two different demos", "pass one of them")
    if scripted:
        from .dev import demo as scenario

        scenario.run(console, debounce=debounce)
        return
    if app is not None and not app.is_file():
        raise CliError(
            f"the app {app} is not a file", "pass --app with the path of a Solara app (a .py file)"
        )
    app = app or EXAMPLE_APP
    if not app.exists():
        raise CliError(f"the example app {app} is not here (installed from a wheel?)", "pass --app PATH")
    ensure_port_free(host, port)  # before anything starts: a busy port is one line, not a dead server
    if fleet:
        from .dev import fleet as devfleet

        devfleet.run(console, app=app, host=host, port=port, debounce=debounce)
        return
    env = {
        **os.environ,
        "SOLARA_STATE_BACKEND": "memory",
        "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),
        "SOLARA_STATE_FLUSH_DEBOUNCE": f"{debounce}s",
        "SOLARA_STATE_TEST_EVICTION": "true",
        "SOLARA_SESSION_HTTP_ONLY": "true",
        "SOLARA_MODE": "development",
    }
    console.print(
        f"[bold]Open http://{host}:{port}[/] and press [bold]Simulate failover[/] after changing things."
    )
    console.print("Persisted: filters, selected product, checkout form. Not persisted: the click counter.")
    command = [
        sys.executable,
        "-m",
        "solara",
        "run",
        str(app),
        "--host",
        host,
        "--port",
        str(port),
        "--no-open",
    ]
    raise SystemExit(subprocess.call(command, env=env))


def ensure_port_free(host: str, port: int) -> None:
    """Refuse a port something else listens on, naming a free one to pass as ``--port`` instead."""
    if port == 0:
        return
    try:
        with _bound(host, port):
            return
    except OSError as error:
        reason = error.strerror or str(error)
    try:
        with _bound(host, 0) as probe:
            suggestion = f", e.g. --port {probe.getsockname()[1]}"
    except OSError:
        suggestion = ""
    raise CliError(
        f"the demo port {host}:{port} cannot be used ({reason})", f"pass --port with a free one{suggestion}"
    )


@contextlib.contextmanager
def _bound(host: str, port: int) -> Iterator[socket.socket]:
    """A socket bound as a server binds it (SO_REUSEADDR, like uvicorn and asyncio): free means bindable."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        yield sock


_APPS = click.argument("apps", nargs=-1, metavar="[APP_MODULE]...")
_SCHEMAS_DIR = click.option(
    "--schemas-dir",
    default=None,
    show_default="schemas-dir of [tool.solara-persisted], else schemas",
    type=click.Path(path_type=Path),  # not click's own checks: ours refuse in one line
    help="Where the committed schemas live.",
)


@main.command(short_help="Write the JSON Schema of each spec's declared version.")
@_APPS
@_SCHEMAS_DIR
@click.option(
    "--force", is_flag=True, help="Rewrite a changed schema in place (only for a version never deployed)."
)
def codegen(apps: tuple[str, ...], schemas_dir: Path | None, force: bool) -> None:
    """Write schemas/<key>/v<N>.json for every spec the app modules (names or .py paths) declare."""
    from .schema import codegen as generator

    target = resolve(apps, schemas_dir)
    console = Console()
    _print_source(console, target)
    registry = _load(target)
    _require_declarations(registry, target)
    with refusals():
        report = generator.generate(registry, Path(display_path(target.schemas_dir)), force=force)
    for path in report.written:
        console.print(f"[green]wrote[/] {display_path(path)}", highlight=False)
    for path in report.unchanged:
        console.print(f"[dim]unchanged {display_path(path)}[/]", highlight=False)
    for path in report.stubs:
        console.print(f"[yellow]migration missing: wrote the stub {display_path(path)}[/]", highlight=False)
        console.print(path.read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)
    for skipped in report.skipped:
        console.print(f"[dim]skipped {skipped}[/]")
    _print_untyped(console, report.untyped)
    _print_problems(console, report.problems)
    if report.problems:
        raise SystemExit(1)


@main.command(short_help="CI gate: fail when the specs and committed schemas disagree.")
@_APPS
@_SCHEMAS_DIR
@click.option(
    "--format",
    "output",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="auto: a table on a terminal, plain lines elsewhere (a CI log); json; github: Actions annotations.",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Pass when the apps declare nothing and no schemas exist yet (a project's first commit).",
)
def check(apps: tuple[str, ...], schemas_dir: Path | None, output: str, allow_empty: bool) -> None:
    """Fail (exit 1) when the app's specs and the committed schemas disagree: a CI gate.

    Also refuses (exit 2, one line) to pass vacuously: apps that declare nothing (the wrong
    module), a schemas directory that does not exist, a missing file, an app that fails to import.
    """
    from .schema import check as gate

    console = Console()
    if output == "auto":
        output = "table" if console.is_terminal else "plain"
    try:
        target = resolve(apps, schemas_dir)
        schemas = Path(display_path(target.schemas_dir))
        registry = _load(target, quiet=output == "json")
        empty = not (registry.specs() or registry.retired())
        if allow_empty and empty and not schemas.exists():
            report = gate.CheckReport(schemas)  # a first commit: nothing declared, nothing committed
        else:
            if not allow_empty:
                _require_declarations(registry, target, offer_allow_empty=True)
            _schemas_dir_check(schemas)
            with refusals():
                report = gate.check(registry, schemas)
    except CliError as error:
        if output == "json":
            click.echo(json.dumps({"ok": False, "error": error.message}, indent=2, ensure_ascii=False))
        elif output == "github":
            click.echo(gate.annotation("error", error.message))
        raise
    if output == "json":
        click.echo(gate.dumps(report))
    elif output == "table":
        _print_source(console, target)
        gate.print_table(console, report)
    else:
        click.echo(f"checking {target.shown_apps} against {schemas}/{target.note}")
        for line in gate.github_lines(report) if output == "github" else gate.plain_lines(report):
            click.echo(line)
    if not report.ok:
        raise SystemExit(1)


def _print_source(console: Console, target: Target) -> None:
    if target.note:
        console.print(f"apps: {target.shown_apps}{target.note}", highlight=False, soft_wrap=True, markup=False)


def _print_untyped(console: Console, notes: list[str]) -> None:
    for note in notes:
        console.print(f"[yellow]untyped (persist=True)[/] {note}", highlight=False, soft_wrap=True)


def _print_problems(console: Console, problems: list[Problem]) -> None:
    for problem in problems:
        console.print(
            f"[red]FAIL[/] [bold]{problem.key}[/] {problem.problem}", highlight=False, soft_wrap=True
        )
        console.print(f"     fix: {problem.fix}", highlight=False, soft_wrap=True)


@main.command(short_help="Add the golden payload of each spec's declared version.")
@_APPS
@click.option(
    "--dir",
    "goldens_dir",
    default=None,
    show_default="goldens-dir of [tool.solara-persisted], else goldens",
    type=click.Path(path_type=Path),
    help="Where the committed goldens live.",
)
@_SCHEMAS_DIR
def golden(apps: tuple[str, ...], goldens_dir: Path | None, schemas_dir: Path | None) -> None:
    """Add goldens/<key>/v<N>.json, the stored payload of each spec's declared version; never overwrites.

    The value is the last example of the committed schema of that version, else the default.
    """
    from .schema import goldens

    target = resolve(apps, schemas_dir, goldens_dir, goldens=True)
    console = Console()
    _print_source(console, target)
    registry = _load(target)
    _require_declarations(registry, target)
    with refusals():
        assert target.goldens_dir is not None
        report = goldens.write_goldens(
            registry, Path(display_path(target.goldens_dir)), Path(display_path(target.schemas_dir))
        )
    for path, source in report.written:
        console.print(
            f"[green]wrote[/] {display_path(path)} (from {source}); commit it: from now on it is history",
            soft_wrap=True,
            highlight=False,
        )
    for path in report.kept:
        console.print(
            f"[dim]kept {display_path(path)}: goldens are never rewritten[/]", soft_wrap=True, highlight=False
        )
    for skipped in report.skipped:
        console.print(f"[dim]skipped {skipped}[/]")
    _print_problems(console, report.problems)
    if report.problems:
        raise SystemExit(1)


@main.command(short_help="Check that persistence will work on this instance, and say why not.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON instead of a table.")
@click.option(
    "--timeout",
    default=None,
    metavar="DURATION",
    show_default="SOLARA_STATE_CONNECT_TIMEOUT",
    help="Bound of each Redis call: 300ms, 2s.",
)
@click.option(
    "--memory-warn",
    default=80.0,
    show_default=True,
    type=click.FloatRange(0, 95, min_open=True),
    help="Warn when Redis uses this percentage of maxmemory (95 fails).",
)
@click.option(
    "--sample",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Read at most this many stored keys.",
)
def doctor(as_json: bool, timeout: str | None, memory_warn: float, sample: int) -> None:
    """Check that persistence will work here, with the server's own SOLARA_STATE_* environment.

    One row per check (settings, reachable, server, tls, eviction, memory, acl, key ring, stored
    sessions, ttl): pass, warn or fail, what was found and the fix. Exits 1 when a check fails.
    Writes nothing but a scratch key of its own, deleted before it ends.
    """
    from .ops import doctor as checks

    limit = None if timeout is None else _timeout(timeout, 0.0)  # None: the settings' connect timeout
    row, settings = checks.check_settings(os.environ)
    rows = [row]
    if settings is not None:
        rows += checks.run_doctor(settings, timeout=limit, memory_warn=memory_warn, sample=sample)
    if as_json:
        click.echo(checks.to_json(rows))
    else:
        checks.print_table(Console(), rows)
    if not checks.ok(rows):
        raise SystemExit(1)


@main.command(short_help="Hand this instance's sessions on before it stops (a preStop hook).")
@click.option(
    "--url",
    default="http://127.0.0.1:8765",
    show_default=True,
    help="The instance's own address (from inside its pod or host).",
)
@click.option("--timeout", default=None, help="Bound on the drain, e.g. 15s (default 10s, at most 60s).")
def drain(url: str, timeout: str | None) -> None:
    """Make the instance at URL leave the fleet without losing a session.

    It reports not-ready, writes every session to Redis, and closes every websocket, so the
    browsers reconnect at once to another instance, which restores them. Authenticated with
    SOLARA_STATE_DRAIN_TOKEN from this environment. Prints the instance's report; exits 1 when
    some changes could not be written (Redis out), 2 when the drain could not be asked.
    """
    from .ops.drain import drain as request_drain

    with refusals():
        report = request_drain(url, os.environ, _timeout(timeout, 10.0))
    click.echo(json.dumps(report))
    if report.get("unwritten"):
        raise SystemExit(1)


def _timeout(timeout: str | None, default: float) -> float:
    """``--timeout``: a duration above zero and at most 60 s; ``default`` when not given."""
    from .errors import ConfigError
    from .parsing import parse_duration

    if timeout is None:
        return default
    try:
        limit = parse_duration("--timeout", timeout)
    except ConfigError as error:
        raise CliError(f"--timeout {error.problem}", error.fix) from error
    if not 0 < limit <= 60:
        raise CliError(f"--timeout {timeout} is not above zero and at most 60s", "pass e.g. --timeout 2s")
    return limit


def _settings() -> Settings:
    """The server's settings from this environment; a malformed one is the server's own refusal."""
    from .config import Settings
    from .errors import ConfigError

    try:
        return Settings.from_env()
    except ConfigError as error:
        raise CliError(f"{error.setting}: {error.problem}", error.fix) from error


@main.command(short_help="Estimate the Redis memory of the app's sessions.")
@_APPS
@_SCHEMAS_DIR
@click.option(
    "--goldens-dir",
    default=None,
    show_default="goldens-dir of [tool.solara-persisted], else goldens",
    type=click.Path(path_type=Path),
    help="Where the committed goldens live.",
)
@click.option(
    "--sessions",
    default=10_000,
    show_default=True,
    type=click.IntRange(1, 10**9),
    help="Sessions to size for (shown with 1k, 10k, 100k and 1M).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON instead of tables.")
def sizing(
    apps: tuple[str, ...], schemas_dir: Path | None, goldens_dir: Path | None, sessions: int, as_json: bool
) -> None:
    """Estimate a session's bytes and the Redis memory for N sessions, from the specs and committed goldens.

    Says whether a session stays in Redis's compact listpack encoding and which keys' values
    convert the whole hash. The listpack limits come from the configured Redis (CONFIG GET),
    else Redis's defaults; nothing is written.
    """
    from .ops import sizing as model

    target = resolve(apps, schemas_dir, goldens_dir, goldens=True)
    console = Console()
    if not as_json:
        _print_source(console, target)
    registry = _load(target, quiet=as_json)
    _require_declarations(registry, target)
    settings = _settings()
    assert target.goldens_dir is not None
    with refusals():
        estimate = model.estimate(
            registry,
            Path(display_path(target.goldens_dir)),
            Path(display_path(target.schemas_dir)),
            settings,
            model.read_limits(settings),
            sessions,
        )
    if as_json:
        click.echo(model.to_json(estimate))
    else:
        model.print_report(console, estimate, sessions)


@main.command(short_help="Census of the stored sessions, or verify one by its address.")
@click.argument("address", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.option(
    "--limit",
    default=100_000,
    show_default=True,
    type=click.IntRange(1, 10**8),
    help="Read at most this many keys under the prefix.",
)
@click.option("--show-keys", is_flag=True, help="Show persisted keys' names instead of their hashes.")
@click.option(
    "--show-values", is_flag=True, help="With ADDRESS: show each value, not only its type and size."
)
@click.option(
    "--app",
    "apps",
    multiple=True,
    metavar="APP_MODULE",
    help="With ADDRESS: decode with this app's specs (repeatable); default: apps of [tool.solara-persisted].",
)
@click.option(
    "--timeout",
    default=None,
    metavar="DURATION",
    show_default="5s",
    help="Bound of each Redis call: 300ms, 2s.",
)
def inspect(
    address: str | None,
    as_json: bool,
    limit: int,
    show_keys: bool,
    show_values: bool,
    apps: tuple[str, ...],
    timeout: str | None,
) -> None:
    """Report what is stored under SOLARA_STATE_PREFIX, read with the server's own environment.

    Without ADDRESS: sessions, claims, shared and other keys; sizes and TTLs; the largest
    sessions by address; bytes and stored versions per persisted key. SCAN in bounded steps,
    never a whole value. With ADDRESS: verify and decode that one session as a restore would,
    showing each value as its type and size; exits 1 when it does not verify. Read-only.
    """
    from .ops import inspect as census

    settings = _settings()
    if settings.backend != "redis":
        raise CliError(
            f"inspect reads a Redis, and SOLARA_STATE_BACKEND is {settings.backend or 'unset'}",
            "run it with the server's environment: SOLARA_STATE_BACKEND=redis and SOLARA_STATE_URL",
        )
    bound = _timeout(timeout, 5.0)
    if address is not None:
        _inspect_session(settings, address, apps, bound, as_json, show_values)
        return
    if show_values or apps:
        raise CliError("--show-values and --app read one session", "pass its ADDRESS too")
    console = Console()
    connection = _connect(settings, bound)
    try:
        total = min(limit, sum(node.dbsize() for _, node in connection.nodes))
        with _progress(quiet=as_json, total=total) as advance:
            found = census.census(connection, settings.prefix, limit, advance)
    except _redis_failures() as error:
        raise _redis_refusal(error) from error
    finally:
        connection.close()
    document = census.report(found, prefix=settings.prefix, limit=limit, show_keys=show_keys)
    if as_json:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        from .backends.redis import redact

        census.print_report(console, document, redact(settings.url))


def _inspect_session(
    settings: Settings, text: str, apps: tuple[str, ...], bound: float, as_json: bool, show_values: bool
) -> None:
    """``inspect ADDRESS``: read one session, verify and decode it; exit 1 when it does not verify."""
    from .address import shared_address
    from .envelope import KeyRing
    from .errors import ConfigError
    from .ops import inspect as census

    address = census.parse_address(text, settings.prefix)
    if address is None:
        raise CliError(
            f"{text!r} is not a session address",
            "pass the 22-character {S}K address that `solara-persisted inspect` lists (or {S}, the 12-character "
            "address of a browser session's shared values), with or without SOLARA_STATE_PREFIX",
        )
    try:
        ring = KeyRing.from_secrets(settings.secret_keys)
    except ConfigError as error:
        raise CliError(f"{error.setting}: {error.problem}", error.fix) from error
    registry = _inspect_registry(apps, quiet=as_json)
    kernel = len(address) != len(shared_address(address))
    connection = _connect(settings, bound)
    try:
        client = connection.client
        key = settings.prefix + address
        stored = client.hgetall(key) if kernel else None
        shared = client.hgetall(settings.prefix + shared_address(address))
        ttl = client.pttl(key)
    except _redis_failures() as error:
        raise _redis_refusal(error) from error
    finally:
        connection.close()
    if (kernel and not stored) or (not kernel and not shared):
        raise CliError(
            f"no session is stored at {key!r}",
            "check the address and SOLARA_STATE_PREFIX; the state may have expired, or been deleted when its tab closed",
        )
    verdict = census.verify(
        address, stored, shared, ttl=ttl, ring=ring, registry=registry, settings=settings, show_values=show_values
    )
    if as_json:
        click.echo(json.dumps(census.verdict_document(verdict), indent=2, ensure_ascii=False))
    else:
        census.print_verdict(Console(), verdict, show_values)
    if not verdict.ok:
        raise SystemExit(1)


def _inspect_registry(apps: tuple[str, ...], *, quiet: bool) -> Registry | None:
    """The registry of ``--app``, else of the project's apps; None (values shown undecoded) without either."""
    if apps:
        target = Target(apps, None, Path("schemas"), None, "")
    else:
        project = _project()
        if not project.apps:
            return None
        target = Target(project.apps, project.root, project.schemas_dir, None, project.describe())
    return _load(target, quiet=quiet)


def _connect(settings: Settings, bound: float) -> Connection:
    """Connect as the server does (the doctor's ``reachable`` check); unreachable is a one-line refusal."""
    from .ops import doctor as checks

    row, connection = checks.check_reachable(settings, bound)
    if connection is None:
        raise CliError(row.found, row.fix or "check SOLARA_STATE_URL")
    return connection


def _redis_failures() -> tuple[type[Exception], ...]:
    from redis.exceptions import RedisClusterException, RedisError

    return (RedisError, RedisClusterException, OSError)


def _redis_refusal(error: Exception) -> CliError:
    from redis.exceptions import NoPermissionError

    if isinstance(error, NoPermissionError):
        return CliError(
            f"Redis refused a read: {error}",
            "run it as a user allowed SCAN, SCRIPT LOAD, EVALSHA, PTTL and HGETALL under the prefix (MEMORY USAGE "
            "is optional)",
        )
    return CliError(
        f"reading Redis failed: {type(error).__name__}: {error}",
        "rerun; if it fails again, check the network and raise --timeout",
    )


@contextlib.contextmanager
def _progress(*, quiet: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while keys are read; nothing when quiet or stderr is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("reading keys"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    ) as progress:
        task = progress.add_task("keys", total=total)
        yield lambda n: progress.advance(task, n)
