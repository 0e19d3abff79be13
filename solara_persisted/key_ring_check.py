"""The fleet key-ring check: every instance publishes its key ring's fingerprint and compares the
fleet's, so replicas signing with different ``SOLARA_STATE_SECRET_KEYS`` (the runbook's first cause
of bail-outs) are named in one warning at start-up, not discovered through users' lost state."""

from __future__ import annotations

import logging
import threading

from .backends import Backend
from .breaker import BackendGuard
from .envelope import KeyRing
from .errors import BackendError

logger = logging.getLogger("solara.state")

#: How often each instance publishes its key-ring fingerprint, and when a silent one is gone.
KEY_RING_INTERVAL = 30.0
KEY_RING_MAX_AGE = 3 * KEY_RING_INTERVAL


class KeyRingCheck:
    """Publishes this instance's fingerprint and remembers the fleet's (instance -> fingerprint)."""

    def __init__(self, backend: Backend, guard: BackendGuard, ring: KeyRing, instance_id: str) -> None:
        self._backend = backend
        self._guard = guard
        self._ring = ring
        self._instance_id = instance_id
        self._lock = threading.Lock()
        self._seen: dict[str, str] = {}
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def seen(self) -> dict[str, str]:
        """The fleet as last published (instance -> fingerprint), ours included."""
        with self._lock:
            return dict(self._seen)

    def check(self) -> dict[str, str]:
        """Publish our fingerprint and compare the fleet's; one warning when they start to differ."""
        ours = self._ring.fingerprint()
        try:
            seen = self._guard.call(self._backend.publish_key_ring, self._instance_id, ours, KEY_RING_MAX_AGE)
        except BackendError:
            return self.seen
        fingerprints = set(seen.values())
        with self._lock:  # the background check and an explicit one must not both report a change
            changed = set(self._seen.values()) != fingerprints
            self._seen = seen
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

    def start(self) -> None:
        """Check now, then every ``KEY_RING_INTERVAL`` in a daemon thread until ``stop``."""
        self.check()
        self._thread = threading.Thread(target=self._watch, name="solara-persisted-fleet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._closing.wait(KEY_RING_INTERVAL):
            self.check()
