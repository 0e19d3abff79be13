"""How the operator commands print: sizes, durations and tables in one style.

``doctor``, ``inspect`` and ``sizing`` report to the same person at the same terminal, often
side by side; a size or a TTL must read the same in each, so they share these.
"""

from __future__ import annotations

from rich import box
from rich.table import Table


def human_size(amount: float) -> str:
    """Bytes in decimal units to three figures: ``512 B``, ``1.5 kB``, ``2.05 GB``."""
    if amount < 1000:
        return f"{amount:.0f} B"
    for unit in ("kB", "MB", "GB"):
        amount /= 1000
        if amount < 1000:
            return f"{amount:.3g} {unit}"
    return f"{amount / 1000:.3g} TB"


def human_duration(seconds: float) -> str:
    """Seconds in the largest unit that fits, to three figures: ``24h`` (not ``1d``), ``5m``, ``250ms``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size * (2 if unit == "d" else 1):  # 24h, not 1d
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds * 1000:.3g}ms"


def compact_table(title: str | None) -> Table:
    """A compact table: a rule under the header, no frame, so that it fits an 80-column terminal."""
    return Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0)
    )
