"""tests/apps/builtin_api_counter.py without `import solara_persisted`: Solara's own engine persists it.

The instance of a fleet that has not switched engines yet (tests/test_engine_switch_fleet.py). Keep
the two files the same app: the same reactives, keys and page, so the keys Solara derives
(`__main__:count`, `__main__:Prefs.dark`) are the ones our engine reads back.
"""

import solara

count = solara.reactive(0, persist=True)
plain = solara.reactive(0)
history = solara.reactive((), persist=True, key="e2e.history")
clicked = solara.reactive(frozenset(), persist=solara.PersistConfig(key="e2e.clicked"))


class Prefs:
    dark = solara.reactive(False, persist=True)


def add() -> None:
    count.set(count.value + 1)
    history.set((*history.value, count.value))
    clicked.set(clicked.value | {f"n{count.value}"})
    Prefs.dark.set(count.value % 2 == 1)


@solara.component
def Page() -> None:
    solara.Button("Add persisted", on_click=add)
    solara.Button("Add plain", on_click=lambda: plain.set(plain.value + 1))
    solara.Text(f"Persisted: {count.value}")
    solara.Text(f"Plain: {plain.value}")
    solara.Text(f"History: {history.value!r}")
    solara.Text(f"Clicked: {sorted(clicked.value)!r}")
    solara.Text(f"Dark: {Prefs.dark.value}")
