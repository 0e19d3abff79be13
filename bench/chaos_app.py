"""The app the chaos checker's simulated users drive, over Solara's websocket protocol.

A user writes one command into the ``cmd`` text widget: JSON ``{"seq": n, "set": {key: value}}``.
The handler sets every named value in that one event, so the checker can test that values set
together are restored together. The ``state`` HTML widget answers with what the kernel holds: the
values, the last command applied, and what its restore did. Values are strings the user chose
(``u17-42``: user 17, command 42), so a restore that hands one user another's value is visible.

``CHAOS_APP_VERSION=2`` declares ``chaos.c`` at version 2 with a reversible migration, which
version 1 ships ahead (a rolling deploy that bumps a spec or rolls it back: old and new instances
read each other's state); ``CHAOS_PLANT`` plants a known bug for the checker's own tests (``chaos_plants.py``),
and is read here, by this test app, never by the package.
"""

from __future__ import annotations

import json
import os
import socket
import time

import attrs
import ipywidgets as widgets
import solara

from solara_persisted import AddField, migration, persisted, restore_info, state_generation

if os.environ.get("CHAOS_PLANT"):
    import chaos_plants

    chaos_plants.plant(os.environ["CHAOS_PLANT"])

VERSION = int(os.environ.get("CHAOS_APP_VERSION", "1"))
INSTANCE = os.environ.get("CHAOS_INSTANCE", socket.gethostname())


@persisted(key="chaos.a")
def a() -> str:
    return ""


@persisted(key="chaos.b")
def b() -> str:
    return ""


@persisted(key="chaos.seq")
def seq() -> int:
    return 0


if VERSION >= 2:

    @attrs.frozen
    class Note:
        text: str = ""
        edited_by: str = ""  # new in version 2: an old instance reads version 2 by dropping it

    @persisted(key="chaos.c", version=2)
    def c() -> Note:
        return Note()

    migration("chaos.c", from_version=1, ops=[AddField("edited_by", "")])

    def set_c(value: str) -> None:
        c.set(Note(value, INSTANCE))

else:

    @attrs.frozen
    class Note:  # type: ignore[no-redef]
        text: str = ""

    @persisted(key="chaos.c")
    def c() -> Note:
        return Note()

    # The reversible step shipped one release ahead of the bump (docs/schema-evolution.md §4): a
    # version 1 instance reads what version 2 wrote by running it backwards (dropping edited_by),
    # so a deploy that rolls the bump back restores instead of starting fresh.
    migration("chaos.c", from_version=1, ops=[AddField("edited_by", "")])

    def set_c(value: str) -> None:
        c.set(Note(value))


SETTERS = {"a": a.set, "b": b.set, "c": set_c}
#: How long the last event's handler took, in ms (not persisted): the part of an interaction
#: persistence could make wait. The round trip a user sees adds the machine's queueing to it.
handled_ms = solara.reactive(0.0)


def apply(command: str) -> None:
    """One user event: every value it names is set in this one handler, then the seq."""
    if not command:
        return
    started = time.perf_counter()
    parsed = json.loads(command)
    for name, value in parsed["set"].items():
        SETTERS[name](value)
    seq.set(parsed["seq"])
    handled_ms.set((time.perf_counter() - started) * 1000)


@solara.component
def Page() -> None:
    info = restore_info()
    state = {
        "a": a.value,
        "b": b.value,
        "c": c.value.text,
        "seq": seq.value,
        "restore": None if info is None else info.result.value,
        "generation": state_generation(),
        "instance": INSTANCE,
        "version": VERSION,
        "handled_ms": handled_ms.value,
    }
    widgets.Text.element(description="cmd", value="", on_value=apply)
    widgets.HTML.element(description="state", value=json.dumps(state, sort_keys=True))
