"""Shared by the engine tests: specs, settings per backend (memory and a real redis-server), and a
stand-in kernel whose values the engine snapshots."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs
import pytest

from solara_persisted.address import session_address
from solara_persisted.backends import create_backend
from solara_persisted.backends.base import Backend
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.spec import persisted, persisted_family, registry
from solara_persisted.worker import Session

SECRET = secrets.token_urlsafe(32)
OLD_SECRET = secrets.token_urlsafe(32)
DEBOUNCE = 0.05


@attrs.frozen
class Cart:
    items: tuple[str, ...] = ()
    coupon: str | None = None


@pytest.fixture(name="specs")
def specs_fixture() -> Iterator[dict[str, Any]]:
    with registry.isolated():

        @persisted(key="t.page")
        def page() -> int:
            return 0

        @persisted(key="t.cart", version=1)
        def cart() -> Cart:
            return Cart()

        @persisted(key="t.blob", warn_bytes=200, max_bytes=400)
        def blob() -> str:
            return ""

        family = persisted_family("user:{uid}:query", type=str, default="")
        yield {"page": page, "cart": cart, "blob": blob, "family": family}


@pytest.fixture(name="settings", params=["memory", "redis"])
def settings_fixture(request: pytest.FixtureRequest) -> Settings:
    if request.param == "memory":
        return Settings(
            backend="memory", secret_keys=(SECRET,), flush_debounce=DEBOUNCE, session_http_only=True
        )
    url = request.getfixturevalue("redis_url")
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    return Settings(
        backend="redis",
        url=url,
        secret_keys=(SECRET,),
        flush_debounce=DEBOUNCE,
        prefix=prefix,
        session_http_only=True,
    )


@pytest.fixture(name="backend")
def backend_fixture(settings: Settings) -> Iterator[Backend]:
    backend = create_backend(settings)
    yield backend
    backend.close()


class Kernel:
    """A stand-in for a Solara kernel's store: values behind a lock, a session on an engine."""

    def __init__(self, engine: Engine, kernel_id: str, cookie: str) -> None:
        self.engine = engine
        self.address = session_address(cookie, kernel_id)
        self.values: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.restored = engine.restore(kernel_id, cookie)
        self.values.update(self.restored.values)
        self.session: Session = engine.open_session(kernel_id, self.restored, self.snapshot, keys=self.keys)

    def snapshot(self, keys: Iterable[str]) -> Mapping[str, Any]:
        with self.lock:
            return {key: self.values[key] for key in keys if key in self.values}

    def keys(self) -> list[str]:
        with self.lock:
            return list(self.values)

    def reconnect(self, opened_at: float | None = None) -> bool:
        """The page reconnects to this live kernel (Solara's ``new_epoch``); False: it is stale."""
        return self.engine.reassert(self.session, time.time() if opened_at is None else opened_at)

    def set(self, key: str, value: Any) -> None:
        with self.lock:
            self.values[key] = value
        self.engine.mark_dirty(self.session, key)

    def event(self, values: Mapping[str, Any]) -> None:
        """One event handler setting several values: each marked dirty as it is set, under the lock,
        as Solara's reactives are inside a handler."""
        with self.lock:
            for key, value in values.items():
                self.values[key] = value
                self.engine.mark_dirty(self.session, key)


def make_engine(settings: Settings, backend: Backend, **changes: Any) -> Engine:
    engine = Engine(attrs.evolve(settings, **changes), backend=backend)
    engine.start()
    return engine


