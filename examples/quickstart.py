import solara

from solara_persisted import persisted, persisted_family


@persisted(key="quickstart.count")  # the type is the annotation; a failover restores it
def count() -> int:
    return 0


notes = persisted_family("quickstart.note:{topic}", type=str, default="")  # one key per topic


@solara.component
def Page() -> None:
    note = notes(topic="groceries")
    solara.Button(f"Clicked {count.value} times", on_click=lambda: count.set(count.value + 1))
    solara.InputText("Groceries", value=note.value, on_value=note.set)
