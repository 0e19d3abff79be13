"""Known bugs the chaos checker must find: planted into a test app's server, never into the package.

``bench/chaos_app.py`` calls ``plant(name)`` when its own ``CHAOS_PLANT`` variable is set; nothing
in ``solara_persisted`` reads that variable or imports this module, so no production server can
run a planted bug. Each plant breaks one guarantee the checker's model states:

- ``fencing-off``: every write claims the generation the store holds now, so an instance that
  wakes from a pause overwrites what the instance that took its sessions over wrote since.
- ``drain-skipped``: a graceful shutdown writes nothing (no drain, no final flush on close).
- ``wrong-session``: a write carries the values of the session the writer snapshotted before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from solara_persisted.backends.base import FlushRequest
from solara_persisted.backends.redis import RedisBackend
from solara_persisted.engine import Engine
from solara_persisted.events import CloseReason
from solara_persisted.worker import Session, Writer

PLANTS = ("fencing-off", "drain-skipped", "wrong-session")


def plant(name: str) -> None:
    """Patch the running server with the bug ``name`` (one of ``PLANTS``)."""
    planters: dict[str, Callable[[], None]] = {
        "fencing-off": _fencing_off,
        "drain-skipped": _drain_skipped,
        "wrong-session": _wrong_session,
    }
    if name not in planters:
        raise SystemExit(f"CHAOS_PLANT={name!r} is not a planted bug; use one of {', '.join(PLANTS)}")
    planters[name]()


def _fencing_off() -> None:
    original = RedisBackend.flush_many

    def flush_many(self: RedisBackend, requests: Sequence[FlushRequest]) -> list[Any]:
        claimed = []
        for request in requests:
            stored = self.peek_generation(request.address)
            meta = request.meta if stored is None else attrs.evolve(request.meta, generation=stored)
            claimed.append(attrs.evolve(request, meta=meta))
        return original(self, claimed)

    RedisBackend.flush_many = flush_many  # type: ignore[method-assign]


def _drain_skipped() -> None:
    close_session = Engine.close_session

    def skip_on_shutdown(self: Engine, session: Session, reason: CloseReason) -> None:
        if reason == CloseReason.SERVER_SHUTDOWN:
            session.stale = True  # nothing written: what the missing drain would have flushed is lost
        close_session(self, session, reason)

    Engine.drain = lambda self, timeout: 0  # type: ignore[method-assign]
    Engine.close_session = skip_on_shutdown  # type: ignore[method-assign]


def _wrong_session() -> None:
    request = Writer._request
    previous: dict[str, Session] = {}

    def swapped(self: Writer, session: Session, keys: set[str]) -> Any:
        other = previous.get("session")
        previous["session"] = session
        if other is None or other is session:
            return request(self, session, keys)
        own = session.snapshot
        session.snapshot = other.snapshot
        try:
            return request(self, session, keys)
        finally:
            session.snapshot = own

    Writer._request = swapped  # type: ignore[method-assign]
