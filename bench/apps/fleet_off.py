"""Twin of ``fleet_ours.py`` with no persistence: the same four values as plain reactives.

``bench/bench_fleet.py``'s ``off`` configuration runs it without any ``SOLARA_STATE_*`` setting:
the baseline every persisted configuration is compared with.
"""

from __future__ import annotations

import json

import ipywidgets as widgets
import solara

a = solara.reactive("")
b = solara.reactive("")
c = solara.reactive("")
seq = solara.reactive(0)

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
