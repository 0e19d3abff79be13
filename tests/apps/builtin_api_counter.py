"""A counter written only against Solara's own persist API; `import solara_persisted` is the whole change.

Every persist=True form is here: a key Solara derives (module-level, class attribute), an
explicit key=, and a PersistConfig; next to a plain reactive that is not persisted. With
E2E_SOLARA_ENGINE=1 the import is skipped and Solara's own engine persists it: the instance of a
fleet that has not switched engines yet (tests/e2e/test_engine_switch_fleet.py), the same app and keys.
"""

import os

import solara

if os.environ.get("E2E_SOLARA_ENGINE") != "1":
    import solara_persisted  # noqa: F401  # with SOLARA_STATE_* set, it persists every persist=True reactive

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
