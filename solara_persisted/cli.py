"""The ``solara-persisted`` command."""

from __future__ import annotations

import click
from rich.console import Console


@click.group()
def main() -> None:
    """Persist Solara reactive state across instances."""


@main.command()
@click.option("--debounce", default=0.2, show_default=True, help="Write-behind debounce in seconds.")
def demo(debounce: float) -> None:
    """Fail a session over from one instance to another (in-process, memory backend)."""
    from . import demo as scenario

    scenario.run(Console(), debounce=debounce)
