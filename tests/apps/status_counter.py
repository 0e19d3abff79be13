"""A persisted counter under ``PersistenceStatus()``: the notice shows while persistence is degraded."""

import solara

from solara_persisted import PersistenceStatus, persisted


@persisted(key="status.count")
def count() -> int:
    return 0


@solara.component
def Page() -> None:
    PersistenceStatus()
    solara.Button("Add", on_click=lambda: count.set(count.value + 1))
    solara.Text(f"Count: {count.value}")
