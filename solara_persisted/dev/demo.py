"""The in-process failover demo: two instances share one backend, the first one dies.

It runs the real engine end to end (typed specs, codec, signed envelopes, fenced writes,
takeover) on the ``memory`` backend, so a newcomer sees in a few seconds what a reconnect to a
fresh instance restores, what it loses, and what a wrong secret or a stranger's cookie gets.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table

from ..backends.base import Backend
from ..backends.memory import MemoryBackend
from ..config import Settings
from ..engine import Engine, Restored
from ..spec import persisted, registry


@attrs.frozen
class Filters:
    category: str | None = None
    price: tuple[Decimal, Decimal] = (Decimal("0"), Decimal("100"))
    tags: frozenset[str] = frozenset()


def _declare() -> None:
    """The demo's keys, declared while it runs only: importing this module declares nothing."""

    @persisted(key="demo.page")
    def page() -> int:
        return 1

    @persisted(key="demo.filters")
    def filters() -> Filters:
        return Filters()

    @persisted(key="demo.last_visit")
    def last_visit() -> dt.datetime | None:
        return None


class Instance:
    """One simulated server process: an engine plus the kernel store it serves a session from."""

    def __init__(self, name: str, settings: Settings, backend: Backend) -> None:
        self.name = name
        self.engine = Engine(settings, backend=backend)
        self.engine.start()
        self.store: dict[str, Any] = {}
        self.lock = threading.Lock()

    def connect(self, kernel_id: str, session_id: str) -> Restored:
        restored = self.engine.restore(kernel_id, session_id)
        with self.lock:
            self.store = dict(restored.values)
        self.session = self.engine.open_session(kernel_id, restored, self.snapshot)
        return restored

    def snapshot(self, keys: Iterable[str]) -> Mapping[str, Any]:
        with self.lock:
            return {key: self.store[key] for key in keys if key in self.store}

    def set(self, key: str, value: Any) -> None:
        with self.lock:
            self.store[key] = value
        self.engine.mark_dirty(self.session, key)

    def crash(self) -> None:
        """SIGKILL: the writer stops where it is, nothing is drained."""
        self.engine.writer.stop()


def run(console: Console | None = None, debounce: float = 0.2) -> dict[str, Restored]:
    """Run the scenario; returns each instance's restore result (the tests check them).

    The demo's keys live in the registry for the run only, so an app declaring its own is untouched.
    """
    with registry.isolated():
        _declare()
        return _scenario(console or Console(), debounce)


def _scenario(console: Console, debounce: float) -> dict[str, Restored]:
    secret = secrets.token_urlsafe(32)
    settings = Settings(
        backend="memory", secret_keys=(secret,), flush_debounce=debounce, session_http_only=True
    )
    shared = MemoryBackend(settings)  # stands in for the Redis every instance shares
    kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe(16)
    results: dict[str, Restored] = {}

    console.rule("[bold]instance A serves a new session")
    a = Instance("A", settings, shared)
    results["A"] = a.connect(kernel_id, cookie)
    console.print(
        f"connect kernel={kernel_id[:8]}: restore result=[cyan]{results['A'].result}[/] (a new session)"
    )
    chosen = {
        "demo.page": 3,
        "demo.filters": Filters("books", (Decimal("5.50"), Decimal("20")), frozenset({"used", "signed"})),
        "demo.last_visit": dt.datetime(2026, 11, 23, 21, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    }
    for key, value in chosen.items():
        a.set(key, value)
    console.print(
        f"the user changes {len(chosen)} values; the writer flushes them after the {debounce}s debounce"
    )
    time.sleep(debounce * 3)
    a.set("demo.page", 4)
    console.print("the user turns to page 4 ... and instance A is killed before the debounce expires")
    a.crash()

    console.rule("[bold]the reconnect lands on instance B, which never held the session")
    b = Instance("B", settings, shared)
    results["B"] = b.connect(kernel_id, cookie)
    table = Table("key", "on instance A", "restored on B", "type kept")
    for key, value in chosen.items():
        got = results["B"].values.get(key, "(not restored)")
        live = 4 if key == "demo.page" else value
        table.add_row(key, repr(live), repr(got), "yes" if type(got) is type(value) else "no")
    console.print(f"restore result=[green]{results['B'].result}[/] generation={results['B'].generation}")
    console.print(table)
    console.print("page 4 was inside the debounce window when A died: the at-most-once loss window.")

    console.rule("[bold]who else may restore it")
    stranger = Instance("stranger", settings, shared)
    results["stranger"] = stranger.engine.restore(kernel_id, secrets.token_urlsafe(16))
    console.print(
        f"another session's cookie, same kernel id: result={results['stranger'].result}, values=none"
    )
    wrong = Settings(backend="memory", secret_keys=(secrets.token_urlsafe(32),), session_http_only=True)
    c = Instance("C", wrong, shared)
    results["C"] = c.engine.restore(kernel_id, cookie)
    console.print(
        f"an instance with a different SOLARA_STATE_SECRET_KEYS: result=[red]{results['C'].result}[/] "
        f"cause={results['C'].cause} (counted in restore_bailout, never a quiet fresh start)"
    )

    console.rule("[bold]/resourcez state block on instance B")
    block = b.engine.state_block()
    console.print(
        {
            name: block[name]
            for name in ("status", "restore_attempts", "restore_success", "restore_bytes_total")
        }
    )
    for instance in (b, stranger, c):
        instance.engine.drain(1.0)
    return results
