"""The smallest interactive Solara app: proves a fleet instance renders and answers clicks."""

from __future__ import annotations

import solara

count = solara.reactive(0)


@solara.component
def Page() -> None:
    solara.Button("Increment", on_click=lambda: count.set(count.value + 1))
    solara.Text(f"Count: {count.value}")
