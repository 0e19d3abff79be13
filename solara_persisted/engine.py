"""The engine: one per process, tying settings, key ring, backend, breaker, stats and writer.

It knows nothing about Solara. A server integration asks it to ``restore`` when a connection
names a kernel this process does not hold, opens a ``Session`` for the writer, marks keys dirty
on change and closes the session with the close reason; the in-process demo does the same.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from . import migrations
from .backends import Backend, create_backend
from .backends.base import Takeover, validate_kernel_id
from .breaker import Breaker
from .config import Settings
from .envelope import KeyRing, open_envelope
from .errors import BackendError, CodecError, EnvelopeError, MigrationError, TamperedError
from .events import Events
from .spec import Registry
from .spec import registry as default_registry
from .stats import Stats, reveal_keys
from .worker import Budget, Session, Snapshot, Writer

logger = logging.getLogger("solara.state")

#: How often each instance publishes its key-ring fingerprint, and when a silent one is gone.
KEY_RING_INTERVAL = 30.0
KEY_RING_MAX_AGE = 3 * KEY_RING_INTERVAL
#: The bail-out storm valve looks at restores of the last minute, once there are enough of them.
STORM_WINDOW = 60.0
STORM_MIN_RESTORES = 10
STORM_MAX_SAMPLES = 10_000
RestoreResult = Literal["success", "miss", "bailout", "fresh-schema", "timeout", "skipped"]
CloseReason = Literal["page-close", "cull", "superseded", "server-shutdown", "evicted"]
#: Evicting policies silently drop live sessions under memory pressure.
#: Every state key carries a TTL, so even the volatile-* policies evict live sessions.
SAFE_EVICTION_POLICIES = frozenset({"noeviction"})


@attrs.frozen
class Restored:
    """What a takeover gave this process: values to install and the write rights it holds.

    ``generation`` 0 means no write rights (the state belongs to another session).
    ``resign`` are keys verified under a non-primary secret; they are rewritten on open.
    """

    result: RestoreResult
    generation: int
    values: Mapping[str, Any] = attrs.field(factory=dict)
    resign: frozenset[str] = frozenset()
    cause: str | None = None

    @property
    def bailed_out(self) -> bool:
        return self.result == "bailout"


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
        self.schema_tag = settings.schema_tag or "default"
        self._lock = threading.Lock()
        self._drained = False
        self._recent: collections.deque[tuple[float, bool]] = collections.deque()
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._key_rings: dict[str, str] = {}
        self._closing = threading.Event()
        self._fleet_thread: threading.Thread | None = None
        self.writer = Writer(
            backend=self.backend,
            ring=self.ring,
            registry=registry,
            events=self.events,
            breaker=self.breaker,
            schema_tag=self.schema_tag,
            ttl=settings.ttl,
            debounce=settings.flush_debounce,
            default_budget=Budget(settings.warn_value_bytes, settings.max_value_bytes),
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> Engine:
        return cls(Settings.from_env(), **kwargs)

    def start(self) -> None:
        """Check the eviction policy and the fleet's key rings (at start-up, not first use); start writing."""
        self._log_eviction_policy()
        self.check_key_rings()
        self.writer.start()
        self._fleet_thread = threading.Thread(
            target=self._watch_key_rings, name="solara-persisted-fleet", daemon=True
        )
        self._fleet_thread.start()

    def close(self) -> None:
        """Stop the background threads and release the backend (after ``drain``)."""
        self._closing.set()
        self.writer.stop()
        if self._fleet_thread is not None:
            self._fleet_thread.join()
        self.backend.close()

    def _watch_key_rings(self) -> None:
        while not self._closing.wait(KEY_RING_INTERVAL):
            self.check_key_rings()

    def check_key_rings(self) -> dict[str, str]:
        """Publish our key-ring fingerprint and compare the fleet's; one warning when they start to differ."""
        if not self.breaker.allow():
            return self._key_rings
        try:
            seen = self.backend.publish_key_ring(self.instance_id, self.ring.fingerprint(), KEY_RING_MAX_AGE)
        except BackendError as error:
            self.breaker.failure(str(error))
            self.stats.backend_error(str(error))
            return self._key_rings
        self.breaker.success()
        self.stats.backend_ok()
        ours = self.ring.fingerprint()
        fingerprints = set(seen.values())
        with self._lock:  # the background check and an explicit one must not both report a change
            changed = set(self._key_rings.values()) != fingerprints
            self._key_rings = seen
        if len(fingerprints) > 1 and changed:
            others = sorted(instance for instance, theirs in seen.items() if theirs != ours)
            logger.warning(
                "keyring mismatch ours=%s fleet=%s instances=%s: replicas sign with different "
                "SOLARA_STATE_SECRET_KEYS, so restores across them bail out; give every instance the same keys",
                ours,
                ",".join(sorted(fingerprints)),
                ",".join(others),
            )
        return seen

    def _log_eviction_policy(self) -> None:
        try:
            policy = self.backend.eviction_policy()
        except BackendError as error:
            self.stats.backend_error(str(error))
            self.breaker.failure(str(error))
            logger.warning(
                "state backend unreachable at start-up (%s); running degraded until it answers", error
            )
            return
        self.stats.backend_ok()
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

    def restore(self, kernel_id: str, session_id: str) -> Restored:
        """Take over ``kernel_id`` for ``session_id``: all-or-nothing, never raising."""
        validate_kernel_id(kernel_id)
        if not self.breaker.allow():
            return Restored("skipped", generation=1)  # degraded: no read, no connect-time tax
        try:
            takeover = self.backend.takeover(
                kernel_id, self.ring.identities(session_id), self.schema_tag, self.settings.ttl
            )
        except BackendError as error:
            self.breaker.failure(str(error))
            self.stats.backend_error(str(error))
            self.events.restore("timeout", kernel_id)
            return Restored("timeout", generation=1)
        self.breaker.success()
        self.stats.backend_ok()
        return self._remember(self._settle(kernel_id, takeover))

    def bailout_storm(self) -> bool:
        """Whether most recent restores bailed out: a fleet-wide cause (secrets, a bad deploy).

        Then a refresh dialog per user helps nobody (their state is gone either way), so the
        integration soft-re-mounts them fresh instead.
        """
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0][0] < now - STORM_WINDOW:
                self._recent.popleft()
            bailouts = sum(1 for _, bailed in self._recent if bailed)
            total = len(self._recent)
        return total >= STORM_MIN_RESTORES and bailouts / total >= self.settings.bailout_storm_threshold

    def _remember(self, restored: Restored) -> Restored:
        with self._lock:
            self._recent.append((time.monotonic(), restored.bailed_out))
            if len(self._recent) > STORM_MAX_SAMPLES:
                self._recent.popleft()
        return restored

    def _settle(self, kernel_id: str, takeover: Takeover) -> Restored:
        if takeover.reason == "miss":
            self.events.restore("miss", kernel_id)
            return Restored("miss", generation=takeover.generation)
        if takeover.reason == "identity-mismatch":
            stored = takeover.stored_identity or b""
            if not self.ring.owns(stored[:4]):
                # Signed under a secret this instance lacks: the runbook's #1 cause, so be loud.
                self.events.restore("bailout", kernel_id, cause="hmac")
                return Restored("bailout", generation=0, cause="hmac")
            # Another session's state: nothing leaks, nothing is written (no write rights).
            self.events.restore("miss", kernel_id)
            return Restored("miss", generation=0)
        if takeover.reason == "schema-reset":
            self.events.restore("fresh-schema", kernel_id)
            return Restored("fresh-schema", generation=takeover.generation)
        return self._decode_all(kernel_id, takeover)

    def _decode_all(self, kernel_id: str, takeover: Takeover) -> Restored:
        values: dict[str, Any] = {}
        resign: set[str] = set()
        nbytes = 0
        for field, data in takeover.fields.items():
            spec = self.registry.resolve(field)
            if spec is None:
                logger.info("restore skipped undeclared key=%s kernel=%s", field, kernel_id)
                continue
            try:
                opened = open_envelope(self.ring, data, kernel_id=kernel_id, field=field)
                if opened.codec != spec.codec_id:
                    raise CodecError(
                        field, "", f"stored with codec {opened.codec.name}, declared {spec.codec_id.name}"
                    )
                if opened.version > spec.version:
                    # Written by a newer deploy: read it through a reversible chain, else start
                    # fresh here; either way the newer state is left untouched for newer instances.
                    try:
                        values[field] = migrations.convert(spec, field, opened.version, opened.payload)
                    except MigrationError as error:
                        logger.info(
                            "restore of key=%s kernel=%s at a newer version: %s", field, kernel_id, error
                        )
                        self.events.restore("fresh-schema", kernel_id, key=field, cause="newer-version")
                        return Restored("fresh-schema", generation=takeover.generation, cause="newer-version")
                elif opened.version < spec.version:
                    values[field] = migrations.convert(spec, field, opened.version, opened.payload)
                else:
                    values[field] = spec.type_codec.loads(opened.payload)
            except (EnvelopeError, CodecError) as error:
                return self._bail_out(kernel_id, takeover.generation, field, error)
            nbytes += len(data)
            if opened.key_index:
                resign.add(field)
        self.events.restore("success", kernel_id, nbytes=nbytes)
        return Restored("success", generation=takeover.generation, values=values, resign=frozenset(resign))

    def _bail_out(self, kernel_id: str, generation: int, field: str, error: Exception) -> Restored:
        cause = "hmac" if isinstance(error, TamperedError) else getattr(error, "cause", "codec")
        logger.warning("restore of key=%s kernel=%s failed: %s", field, kernel_id, error)
        try:
            self.backend.delete(kernel_id, generation)  # poisoned: the next connect starts clean
        except BackendError as delete_error:
            self.breaker.failure(str(delete_error))
        self.events.restore("bailout", kernel_id, key=field, cause=cause)
        return Restored("bailout", generation=generation, cause=cause)

    def touch(self, kernel_id: str) -> int | None:
        """A reconnect to a live kernel: refresh its state's TTL; the stored generation, or None
        (none stored, or the backend cannot be asked right now)."""
        if not self.breaker.allow():
            return None
        try:
            stored = self.backend.touch(kernel_id, self.settings.ttl)
        except BackendError as error:
            self.breaker.failure(str(error))
            self.stats.backend_error(str(error))
            return None
        self.breaker.success()
        self.stats.backend_ok()
        return stored

    # -- sessions -------------------------------------------------------------------------

    def open_session(
        self,
        kernel_id: str,
        session_id: str,
        restored: Restored,
        snapshot: Snapshot,
        *,
        on_rejected: Callable[[Session], None] | None = None,
    ) -> Session:
        """Start tracking a kernel; keys restored under an old secret are re-signed right away."""
        session = Session(
            kernel_id=kernel_id,
            identity=self.ring.identities(session_id)[0],
            generation=restored.generation,
            snapshot=snapshot,
            on_rejected=on_rejected,
            dirty=set(restored.resign),
        )
        self.writer.add(session)
        return session

    def mark_dirty(self, session: Session, key: str) -> None:
        if session.generation:
            self.writer.mark_dirty(session, key)

    def close_session(self, session: Session, reason: CloseReason) -> None:
        """Final flush; a genuine tab close then deletes (fenced), every other reason leaves it for the TTL."""
        flushed = self.writer.close(session)
        deleted = False
        if reason == "page-close" and session.generation and not session.rejected and self.breaker.allow():
            try:
                deleted = self.backend.delete(session.kernel_id, session.generation)
                self.stats.backend_ok()
            except BackendError as error:
                self.stats.backend_error(str(error))
                self.breaker.failure(str(error))
        elif not flushed:
            logger.warning(
                "final flush of kernel=%s incomplete; state may be a debounce behind", session.kernel_id
            )
        self.events.close(reason, session.kernel_id, deleted)

    def drain(self, timeout: float) -> int:
        """Shutdown: one bounded, batched pass over every session; returns keys left unwritten."""
        left = self.writer.drain(timeout)
        if left:
            logger.warning("shutdown drain left %d changed values unwritten after %.1fs", left, timeout)
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
        reveal = reveal_keys(
            production=self.settings.production,
            token=self.settings.resourcez_token,
            authorization=authorization,
        )
        block = self.stats.block(
            enabled=self.settings.enabled,
            breaker_state=self.breaker.state,
            verbose=verbose,
            reveal_keys=reveal,
        )
        fleet = collections.Counter(self._key_rings.values())
        block["key_ring_fingerprint"] = self.ring.fingerprint()
        block["fleet_key_rings"] = dict(fleet)
        block["fleet_key_ring_mismatch"] = len(fleet) > 1
        return block
