"""A persisted counter next to a plain one: what survives a failover, and what does not."""

import solara

from solara_persisted import persisted


@persisted(key="e2e.count")
def count() -> int:
    return 0


plain = solara.reactive(0)


@solara.component
def Page() -> None:
    solara.Button("Add persisted", on_click=lambda: count.set(count.value + 1))
    solara.Button("Add plain", on_click=lambda: plain.set(plain.value + 1))
    solara.Text(f"Persisted: {count.value}")
    solara.Text(f"Plain: {plain.value}")
