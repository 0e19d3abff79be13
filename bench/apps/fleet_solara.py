"""Twin of ``fleet_ours.py`` on Solara's built-in engine: ``persist=True``, no solara_persisted import.

``bench/bench_fleet.py``'s ``solara`` configuration runs it with the same ``SOLARA_STATE_*``
environment as ours; nothing here (or in what it imports) loads solara_persisted, so Solara's own
engine persists the four values (the bench checks the server log has no "solara-persisted active").
"""

from __future__ import annotations

import json

import ipywidgets as widgets
import solara

a = solara.reactive("", key="fleet.a", persist=True)
b = solara.reactive("", key="fleet.b", persist=True)
c = solara.reactive("", key="fleet.c", persist=True)
seq = solara.reactive(0, key="fleet.seq", persist=True)

SETTERS = {"a": a.set, "b": b.set, "c": c.set}


def apply(command: str) -> None:
    """One user event: every value it names is set in this one handler, then the seq."""
    if not command:
        return
    parsed = json.loads(command)
    for name, value in parsed["set"].items():
        SETTERS[name](value)
    seq.set(parsed["seq"])


@solara.component
def Page() -> None:
    state = {"a": a.value, "b": b.value, "c": c.value, "seq": seq.value}
    widgets.Text.element(description="cmd", value="", on_value=apply)
    widgets.HTML.element(description="state", value=json.dumps(state, sort_keys=True))
