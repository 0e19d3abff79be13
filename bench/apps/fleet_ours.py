"""The fleet bench's app on solara-persisted: three strings and an int, ``@persisted``.

``bench/bench_fleet.py`` drives it over Solara's websocket protocol (``bench/chaos_client.py``'s
wire): a user writes ``{"seq": n, "set": {"a": ..., ...}}`` into the ``cmd`` text widget, the
handler sets every named value and the seq in one event, and the ``state`` HTML widget answers
with the values; its update carrying the seq is the user's acknowledgement. The twins,
``fleet_solara.py`` (Solara's ``persist=True``) and ``fleet_off.py`` (no persistence), differ
only in how the four values are declared.
"""

from __future__ import annotations

import json

import ipywidgets as widgets
import solara

from solara_persisted import persisted


@persisted(key="fleet.a")
def a() -> str:
    return ""


@persisted(key="fleet.b")
def b() -> str:
    return ""


@persisted(key="fleet.c")
def c() -> str:
    return ""


@persisted(key="fleet.seq")
def seq() -> int:
    return 0


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
