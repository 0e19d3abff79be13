"""Both restore scopes, the restore callback and the logout, in one page.

``theme`` and ``note`` (a ``persist=True`` reactive with our ``PersistConfig``) are session
state: every tab and reload of the browser session shares them. ``count`` is one page's state.
"""

import solara

import solara_persisted
from solara_persisted import PersistConfig, persisted

restores = solara.reactive(0)  # plain: how often on_restore ran in this kernel


@persisted(key="scoped.theme", scope="session")
def theme() -> str:
    return "light"


@persisted(key="scoped.count")
def count() -> int:
    return 0


note = solara.reactive("", persist=PersistConfig(key="scoped.note", scope="session"))


@solara_persisted.on_restore
def counted(info: solara_persisted.RestoreInfo) -> None:
    restores.set(restores.value + 1)


def toggle() -> None:
    theme.set("dark" if theme.value == "light" else "light")
    note.set(f"{note.value}+")


@solara.component
def Page() -> None:
    info = solara_persisted.restore_info()
    solara.Button("Toggle theme", on_click=toggle)
    solara.Button("Count", on_click=lambda: count.set(count.value + 1))
    solara.Button("Log out", on_click=solara_persisted.forget_session)
    solara.Text(f"Theme: {theme.value}")
    solara.Text(f"Note: [{note.value}]")
    solara.Text(f"Count: {count.value}")
    if info is not None:
        solara.Text(f"Restore: {info.result} keys={','.join(info.keys) or '-'} callbacks={restores.value}")
