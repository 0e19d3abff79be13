"""Twin of tests/apps/persisted_counter.py on Solara's built-in engine (no solara_persisted import)."""

import solara

count = solara.reactive(0, key="e2e.count", persist=True)
plain = solara.reactive(0)


@solara.component
def Page() -> None:
    solara.Button("Add persisted", on_click=lambda: count.set(count.value + 1))
    solara.Button("Add plain", on_click=lambda: plain.set(plain.value + 1))
    solara.Text(f"Persisted: {count.value}")
    solara.Text(f"Plain: {plain.value}")
