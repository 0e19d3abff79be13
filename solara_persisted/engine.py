"""The engine: one per process, tying settings, key ring, backend, breaker, stats and writer.

It knows nothing about Solara. A server integration asks it to ``restore`` when a connection
names a kernel this process does not hold, opens a ``Session`` for the writer, marks keys dirty
on change and closes the session with the close reason; the in-process demo does the same. The
work itself lives beside it: ``restore.py`` (takeover, verification, bail-outs), ``storm.py``
(the bail-out storm valve), ``key_ring_check.py`` (the fleet's secrets compared), ``worker.py``
(debounced, batched, fenced writes and the drain).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .address import session_address, shared_address
from .backends import Backend, create_backend
from .backends.base import (
    FlushRequest,
    Meta,
    SessionBudget,
    connection_generation,
    tag_digest,
)
from .breaker import BackendGuard, Breaker
from .config import Settings
from .envelope import Codec, KeyRing, envelope_tag, seal
from .errors import (
    BackendError,
)
from .events import CloseReason, Events, RestoreResult, quote
from .key_ring_check import KeyRingCheck
from .restore import Restored, Restorer, fresh_generation
from .spec import Registry
from .spec import registry as default_registry
from .stats import Stats, reveal_keys
from .storm import StormValve
from .worker import Budget, Session, Snapshot, Writer, next_stamp

logger = logging.getLogger("solara.state")

#: Evicting policies silently drop live sessions under memory pressure.
#: Every state key carries a TTL, so even the volatile-* policies evict live sessions.
SAFE_EVICTION_POLICIES = frozenset({"noeviction"})


class Engine:
    """Process-wide persistence: restore on connect, debounced writes, close, drain, stats."""

    def __init__(
        self,
        settings: Settings,
        *,
        backend: Backend | None = None,
        registry: Registry = default_registry,
    ) -> None:
        for warning in settings.validate():
            logger.warning(warning)
        self.settings = settings
        self.ring = KeyRing.from_secrets(settings.secret_keys)
        self.backend = backend if backend is not None else create_backend(settings)
        self.registry = registry
        self.stats = Stats()
        self.events = Events(self.stats)
        self.breaker = Breaker(settings.breaker_failures, settings.breaker_window, self.events)
        self.guard = BackendGuard(self.breaker, self.stats)
        self.schema_tag = settings.schema_tag or "default"
        self.budget = SessionBudget(settings.max_session_keys, settings.max_session_bytes)
        self._lock = threading.Lock()
        self._drained = False
        #: The host this instance runs on, as an app may show it ("restored on web-2").
        self.instance_name = socket.gethostname()
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.storm = StormValve(settings.bailout_storm_threshold)
        self.restorer = Restorer(
            settings,
            ring=self.ring,
            backend=self.backend,
            guard=self.guard,
            registry=registry,
            events=self.events,
            budget=self.budget,
            storm=self.storm,
            schema_tag=self.schema_tag,
        )
        self.key_rings = KeyRingCheck(self.backend, self.guard, self.ring, self.instance_id)
        self.writer = Writer(
            backend=self.backend,
            ring=self.ring,
            registry=registry,
            events=self.events,
            guard=self.guard,
            tag=tag_digest(self.schema_tag),
            ttl=settings.ttl,
            debounce=settings.flush_debounce,
            default_budget=Budget(settings.warn_value_bytes, settings.max_value_bytes),
            session_budget=self.budget,
            claim=self.restorer.claim,
            reassert=self.restorer.reassert,
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> Engine:
        return cls(Settings.from_env(), **kwargs)

    def start(self) -> None:
        """Check the eviction policy and the fleet's key rings (at start-up, not first use); start writing."""
        self._log_eviction_policy()
        self.key_rings.start()
        self.writer.start()

    def close(self) -> None:
        """Stop the background threads and release the backend (after ``drain``)."""
        self.key_rings.stop()
        self.writer.stop()
        self.backend.close()

    def _log_eviction_policy(self) -> None:
        try:
            policy = self.guard.call(self.backend.eviction_policy)
        except BackendError as error:
            logger.warning(
                "state backend unreachable at start-up (%s); running degraded until it answers", error
            )
            return
        if policy is None:
            return
        if policy in SAFE_EVICTION_POLICIES:
            logger.info("state backend maxmemory-policy=%s", policy)
        else:
            logger.warning(
                "state backend maxmemory-policy=%s can evict live session state under memory pressure; "
                "set maxmemory-policy noeviction on the Redis that holds session state",
                policy,
            )

    # -- restore --------------------------------------------------------------------------

    def restore(self, kernel_id: str, session_id: str, opened_at: float | None = None) -> Restored:
        """Take over ``kernel_id``'s state for the session cookie ``session_id`` (``restore.py``);
        all-or-nothing, never raising. ``opened_at`` (seconds since the epoch, default now) is
        when the connection was opened: a connection opened before the one holding the session
        takes nothing over (result "skipped", cause "superseded")."""
        started = time.perf_counter()
        restored = self.restorer.restore(kernel_id, session_id, opened_at)
        if restored.result is not RestoreResult.SKIPPED:  # skipped: no backend call to time
            self.events.timed("restore_seconds", time.perf_counter() - started)
        return restored

    def bailout_storm(self) -> bool:
        """Whether most recent restores bailed out (``storm.py``): then the integration soft-re-mounts."""
        return self.storm.tripped()

    def check_key_rings(self) -> dict[str, str]:
        """Publish our key-ring fingerprint and compare the fleet's (``key_ring_check.py``)."""
        return self.key_rings.check()

    # -- sessions -------------------------------------------------------------------------

    def open_session(
        self,
        kernel_id: str,
        restored: Restored,
        snapshot: Snapshot,
        *,
        on_rejected: Callable[[Session], None] | None = None,
        keys: Callable[[], Iterable[str]] | None = None,
    ) -> Session:
        """Start tracking a kernel; keys restored under an old secret are re-signed right away.

        ``keys`` lists the kernel's keys (written again when a reconnect must claim its session back).
        """
        session = Session(
            kernel_id=kernel_id,
            address=restored.address,
            generation=restored.generation,
            snapshot=snapshot,
            on_rejected=on_rejected,
            dirty=set(restored.resign),
            stamps={key: stamp * 1000 for key, stamp in restored.stamps.items()},  # ns, as mark_dirty keeps them
            stored=dict(restored.stored),
            counter=restored.counter,
            shared=dict(restored.shared),
            claimed=restored.claimed,
            opened=restored.opened,
            manifest=restored.manifest,
            every_key=keys,
        )
        self.writer.add(session)
        return session

    def reassert(self, session: Session, opened_at: float) -> bool:
        """A reconnect opened at ``opened_at`` (seconds since the epoch) reached ``session``'s live
        kernel (``Writer.reassert``, bounded by the connect timeout); False: its copy is stale."""
        return self.writer.reassert(session, connection_generation(opened_at), self.settings.connect_timeout)

    def store_payloads(
        self, kernel_id: str, session_id: str, payloads: Mapping[str, tuple[Codec, int, bytes]]
    ) -> bool:
        """Store already-encoded payloads (field -> codec, spec version, bytes) as a session's whole state.

        For replaying golden payloads of older versions and for tests: the writer only ever
        encodes values at the declared version. Returns False if the session holds state already.
        """
        address = session_address(session_id, kernel_id)
        tag = tag_digest(self.schema_tag)
        fields = {
            field: seal(
                self.ring, address=address, field=field, codec=codec, version=version, payload=payload
            )
            for field, (codec, version, payload) in payloads.items()
        }
        key_id, mac = self.ring.sign_manifest(
            address=address,
            tag=tag,
            counter=1,
            fields={name: envelope_tag(data) for name, data in fields.items()},
        )
        meta = Meta(tag, key_id, 1, mac, fresh_generation())
        return self.backend.flush(FlushRequest(address, meta, fields, self.settings.ttl))

    def forget_shared(self, address: str) -> bool:
        """Drop the shared values of ``address``'s browser session (a logout); False if the backend
        could not. A change made before it, pending anywhere in the fleet, is never written after it."""
        if not address:
            return False
        try:
            dropped = self.guard.call(
                self.backend.forget, shared_address(address), next_stamp(), self.settings.ttl
            )
        except BackendError:
            return False
        logger.info("forget session=%s dropped=%d", shared_address(address), dropped)
        return True

    def mark_dirty(self, session: Session, key: str) -> None:
        if session.generation:
            self.writer.mark_dirty(session, key)

    def release(self, restored: Restored) -> None:
        """A tab closed before its session opened: delete what the takeover holds (fenced), as its
        close would have."""
        if restored.claimed and restored.address:
            with contextlib.suppress(BackendError):  # the guard records it; the TTL expires the state
                self.guard.call(self.backend.delete, restored.address, restored.generation)

    def close_session(self, session: Session, reason: CloseReason) -> None:
        """Final flush; a genuine tab close then deletes (fenced), every other reason leaves it for the TTL.

        A stale session (fenced out since) writes and deletes nothing: its copy is older than the store's.
        """
        flushed = self.writer.close(session)
        deleted = False
        if reason == CloseReason.PAGE_CLOSE and session.generation and not session.stale:
            with contextlib.suppress(BackendError):  # the guard records it; the TTL expires the state
                deleted = self.guard.call(self.backend.delete, session.address, session.generation)
        elif not flushed:
            logger.warning(
                "final flush of kernel=%s incomplete; state may be a debounce behind",
                quote(session.kernel_id),
            )
        self.events.close(reason, session.kernel_id, deleted)

    def drain(self, timeout: float, occasion: str = "shutdown") -> int:
        """Shutdown (or the pre-stop drain): one bounded, batched pass over every session, after
        which nothing more is written; returns keys left unwritten."""
        left = self.writer.drain(timeout)
        if left:
            logger.warning("%s drain left %d changed values unwritten after %.1fs", occasion, left, timeout)
        return left

    def drain_once(self, timeout: float) -> None:
        """``drain`` for the first of many shutdown closes; the others find nothing left to write."""
        with self._lock:
            if self._drained:
                return
            self._drained = True
        self.drain(timeout)

    # -- observability --------------------------------------------------------------------

    def state_block(self, *, verbose: bool = False, authorization: str | None = None) -> dict[str, Any]:
        """The ``/resourcez`` ``state`` block; key labels hashed in production without the token."""
        block = self.stats.block(
            enabled=self.settings.enabled,
            breaker_state=self.breaker.state,
            verbose=verbose,
            reveal_keys=self.reveals_keys(authorization),
        )
        fleet = self.fleet_key_rings()
        block["key_ring_fingerprint"] = self.ring.fingerprint()
        block["fleet_key_rings"] = fleet
        block["fleet_key_ring_mismatch"] = len(fleet) > 1
        return block

    def reveals_keys(self, authorization: str | None) -> bool:
        """Whether a reader with this ``Authorization`` header sees raw key labels (``stats.reveal_keys``)."""
        return reveal_keys(
            production=self.settings.production,
            token=self.settings.resourcez_token,
            authorization=authorization,
        )

    def fleet_key_rings(self) -> dict[str, int]:
        """Key-ring fingerprints the fleet's instances published, with how many publish each (no I/O)."""
        return dict(collections.Counter(self.key_rings.seen.values()))
