"""An app that declares state both ways: Solara's own persist=True API and solara-persisted's @persisted.

Loaded fresh by the in-process tests (``codegen.load_apps``); every persist=True form Solara
offers is here: a derived module-level key, a derived class-attribute key, an explicit key=, and
a PersistConfig.
"""

import dataclasses
import datetime as dt
import enum
import uuid
from decimal import Decimal

import attrs
import solara

from solara_persisted import persisted


class Theme(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


@attrs.frozen
class Filters:
    category: str | None = None
    max_price: float = 100.0
    tags: frozenset[str] = frozenset()


@dataclasses.dataclass
class Draft:
    """Annotations the typed codec cannot store (a bare list, Any): its fields are stored self-described."""

    lines: list = dataclasses.field(default_factory=list)
    note: object = None


@dataclasses.dataclass(frozen=True)
class Product:
    sku: str


count = solara.reactive(0, persist=True)
query = solara.reactive("", persist=solara.PersistConfig())
# kinds JSON lacks, inside an untyped container
history = solara.reactive([], persist=True, key="both.history")
visited = solara.reactive(frozenset(), persist=solara.PersistConfig(key="both.visited"))
# a None default: whatever is assigned later is self-described, a class instance is refused
picked = solara.reactive(None, persist=True, key="both.picked")
filters = solara.reactive(Filters(), persist=True, key="both.filters")
draft = solara.reactive(Draft(), persist=True, key="both.draft")
due = solara.reactive(dt.date(2024, 1, 1), persist=True, key="both.due")


class Prefs:
    theme = solara.reactive(Theme.LIGHT, persist=True)
    token = solara.reactive(uuid.UUID(int=0), persist=True, key="both.prefs.token")


@persisted(key="both.page", version=1)
def page() -> int:
    return 1


@persisted(key="both.budget", version=1)
def budget() -> Decimal:
    return Decimal("0")


@solara.component
def Page() -> None:
    solara.Text(f"Count: {count.value}")
