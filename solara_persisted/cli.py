"""The ``solara-persisted`` command."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import click
from rich.console import Console

#: The example app, when running from a checkout of the repository.
EXAMPLE_APP = Path(__file__).resolve().parents[1] / "examples" / "shop_app.py"


@click.group()
def main() -> None:
    """Persist Solara reactive state across instances."""


@main.command()
@click.option("--scripted", is_flag=True, help="Run the narrated in-process failover instead of the app.")
@click.option("--app", "app", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--debounce", default=0.2, show_default=True, help="Write-behind debounce in seconds.")
def demo(scripted: bool, app: Path | None, host: str, port: int, debounce: float) -> None:
    """Click through a failover: the shop app on the in-process memory backend.

    Change the filters, pick a product, fill in a step of the checkout, then press
    "Simulate failover": the kernel is dropped as if its instance died, the browser
    reconnects, and the page re-mounts in place with everything that was persisted.
    """
    console = Console()
    if scripted:
        from . import demo as scenario

        scenario.run(console, debounce=debounce)
        return
    app = app or EXAMPLE_APP
    if not app.exists():
        raise click.UsageError(f"the example app {app} is not here (installed from a wheel?); pass --app PATH")
    env = {
        **os.environ,
        "SOLARA_STATE_BACKEND": "memory",
        "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),
        "SOLARA_STATE_FLUSH_DEBOUNCE": f"{debounce}s",
        "SOLARA_STATE_TEST_EVICTION": "true",
        "SOLARA_SESSION_HTTP_ONLY": "true",
        "SOLARA_MODE": "development",
    }
    console.print(f"[bold]Open http://{host}:{port}[/] and press [bold]Simulate failover[/] after changing things.")
    console.print("Persisted: filters, selected product, checkout form. Not persisted: the click counter.")
    command = [sys.executable, "-m", "solara", "run", str(app), "--host", host, "--port", str(port), "--no-open"]
    raise SystemExit(subprocess.call(command, env=env))
