"""The ``solara-persisted`` command."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

if TYPE_CHECKING:
    from .codegen import Problem

#: The example app, when running from a checkout of the repository.
EXAMPLE_APP = Path(__file__).resolve().parents[1] / "examples" / "shop_app.py"


@click.group()
def main() -> None:
    """Persist Solara reactive state across instances."""


@main.command()
@click.option("--scripted", is_flag=True, help="Run the narrated in-process failover instead of the app.")
@click.option(
    "--fleet",
    is_flag=True,
    help="A real fleet: local redis-server, two instances, a proxy on --port; Enter kills the serving one.",
)
@click.option("--app", "app", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--debounce", default=0.2, show_default=True, help="Write-behind debounce in seconds.")
def demo(scripted: bool, fleet: bool, app: Path | None, host: str, port: int, debounce: float) -> None:
    """Click through a failover: the shop app on the in-process memory backend.

    Change the filters, pick a product, fill in a step of the checkout, then press
    "Simulate failover": the kernel is dropped as if its instance died, the browser
    reconnects, and the page re-mounts in place with everything that was persisted.
    With --fleet the instance really dies: press Enter in the terminal to SIGKILL it.
    """
    console = Console()
    if scripted and fleet:
        raise click.UsageError("--scripted and --fleet are two different demos; pick one")
    if scripted:
        from . import demo as scenario

        scenario.run(console, debounce=debounce)
        return
    app = app or EXAMPLE_APP
    if not app.exists():
        raise click.UsageError(
            f"the example app {app} is not here (installed from a wheel?); pass --app PATH"
        )
    if fleet:
        from . import devfleet

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


_APPS = click.argument("apps", nargs=-1, required=True, metavar="APP_MODULE...")
_SCHEMAS_DIR = click.option(
    "--schemas-dir",
    default="schemas",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the committed schemas live.",
)


@main.command()
@_APPS
@_SCHEMAS_DIR
@click.option(
    "--force", is_flag=True, help="Rewrite a changed schema in place (only for a version never deployed)."
)
def codegen(apps: tuple[str, ...], schemas_dir: Path, force: bool) -> None:
    """Write schemas/<key>/v<N>.json for every spec the app modules (names or .py paths) declare."""
    from . import codegen as generator
    from .spec import registry

    console = Console()
    generator.load_apps(apps)
    report = generator.generate(registry, schemas_dir, force=force)
    for path in report.written:
        console.print(f"[green]wrote[/] {path}")
    for path in report.unchanged:
        console.print(f"[dim]unchanged {path}[/]")
    for path in report.stubs:
        console.print(f"[yellow]migration missing: wrote the stub {path}[/]")
        console.print(path.read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)
    for skipped in report.skipped:
        console.print(f"[dim]skipped {skipped}[/]")
    _print_untyped(console, report.untyped)
    _print_problems(console, report.problems)
    if report.problems:
        raise SystemExit(1)


@main.command()
@_APPS
@_SCHEMAS_DIR
def check(apps: tuple[str, ...], schemas_dir: Path) -> None:
    """Fail (exit 1) when the app's specs and the committed schemas disagree: a CI gate."""
    from rich.table import Table

    from . import codegen as generator
    from .spec import registry

    console = Console()
    generator.load_apps(apps)
    report = generator.check(registry, schemas_dir)
    table = Table(title=f"persisted keys against {schemas_dir}/", title_justify="left")
    for column in ("key", "committed", "declared", "versions", "path", "verdict", "reason"):
        table.add_column(column)
    for key in report.keys:
        committed = ", ".join(f"v{v}" for v in key.committed) or "-"
        declared = f"v{key.declared}" if key.declared is not None else "gone"
        if not key.changes:
            table.add_row(key.key, committed, declared, "", "", "", "")
        for i, (versions, change) in enumerate(key.changes):
            style = "red" if change.breaking else "green"
            table.add_row(
                key.key if i == 0 else "",
                committed if i == 0 else "",
                declared if i == 0 else "",
                versions,
                change.path,
                f"[{style}]{change.verdict}[/]",
                change.reason,
            )
    console.print(table)
    for skipped in report.skipped:
        console.print(f"[dim]skipped {skipped}[/]")
    _print_untyped(console, report.untyped)
    _print_problems(console, report.problems)
    if not report.ok:
        raise SystemExit(1)
    console.print("[green]check passed[/]")


def _print_untyped(console: Console, notes: list[str]) -> None:
    for note in notes:
        console.print(f"[yellow]untyped (persist=True)[/] {note}", highlight=False, soft_wrap=True)


def _print_problems(console: Console, problems: list[Problem]) -> None:
    for problem in problems:
        console.print(
            f"[red]FAIL[/] [bold]{problem.key}[/] {problem.problem}", highlight=False, soft_wrap=True
        )
        console.print(f"     fix: {problem.fix}", highlight=False, soft_wrap=True)


@main.command()
@_APPS
@click.option(
    "--dir",
    "goldens_dir",
    default="goldens",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the committed goldens live.",
)
@_SCHEMAS_DIR
def golden(apps: tuple[str, ...], goldens_dir: Path, schemas_dir: Path) -> None:
    """Add goldens/<key>/v<N>.json, the stored payload of each spec's declared version; never overwrites.

    The value is the last example of the committed schema of that version, else the default.
    """
    from . import codegen as generator
    from . import snapshots
    from .spec import registry

    console = Console()
    generator.load_apps(apps)
    report = snapshots.write_goldens(registry, goldens_dir, schemas_dir)
    for path, source in report.written:
        console.print(
            f"[green]wrote[/] {path} (from {source}); commit it: from now on it is history", soft_wrap=True
        )
    for path in report.kept:
        console.print(f"[dim]kept {path}: goldens are never rewritten[/]", soft_wrap=True)
    for skipped in report.skipped:
        console.print(f"[dim]skipped {skipped}[/]")
    _print_problems(console, report.problems)
    if report.problems:
        raise SystemExit(1)
