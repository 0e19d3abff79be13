"""The in-process backend: the Redis contract over a dict, for one process and for tests.

It stores exactly the bytes the Redis backend stores (the packed meta field included), under
the same key, so a test on ``memory`` says something about ``redis`` too.
Nothing is shared between processes (``shared = False``): a failover cannot restore from it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import attrs

from ..config import Settings
from ..errors import BackendError
from .base import (
    META_FIELD,
    META_PREFIX,
    Backend,
    FlushRequest,
    Meta,
    Takeover,
    tag_digest,
    ttl_milliseconds,
    validate_identity,
    validate_kernel_id,
    validate_request,
)

#: How often expired hashes are swept on writes (reads drop them on access anyway).
SWEEP_INTERVAL = 60.0


@attrs.define
class _Hash:
    fields: dict[str, bytes]
    expires_at: float


class MemoryBackend(Backend):
    """Kernel hashes in a dict behind one lock; TTLs follow ``clock`` (monotonic seconds)."""

    shared = False

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._prefix = settings.prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._hashes: dict[str, _Hash] = {}
        self._key_rings: dict[str, tuple[str, float]] = {}
        self._next_sweep = clock() + SWEEP_INTERVAL

    def takeover(self, kernel_id: str, identities: Sequence[bytes], schema_tag: str, ttl: float) -> Takeover:
        key = self._prefix + validate_kernel_id(kernel_id)
        for identity in identities:
            validate_identity(identity, kernel_id)
        with self._lock:
            stored = self._live(key)
            if stored is None:
                return Takeover("miss", 1)
            meta = Meta.unpack(stored.fields[META_FIELD])
            if meta.identity not in identities:
                return Takeover("identity-mismatch", 0, stored_identity=meta.identity)
            meta = attrs.evolve(meta, generation=meta.generation + 1)
            stored.fields[META_FIELD] = meta.pack()
            stored.expires_at = self._expiry(ttl)
            if meta.tag != tag_digest(schema_tag):
                return Takeover("schema-reset", meta.generation, stored_tag=meta.tag.hex())
            values = {name: data for name, data in stored.fields.items() if not name.startswith(META_PREFIX)}
            return Takeover("restored", meta.generation, values)

    def flush(self, request: FlushRequest) -> bool:
        validate_request(request)
        if request.generation == 0:
            return False
        key = self._prefix + request.kernel_id
        tag = tag_digest(request.schema_tag)
        with self._lock:
            self._sweep()
            stored = self._live(key)
            if stored is None:
                stored = self._hashes[key] = _Hash({}, 0.0)
            else:
                meta = Meta.unpack(stored.fields[META_FIELD])
                if meta.generation != request.generation:
                    return False
                if meta.tag != tag:  # values written under another schema must not be restored
                    stored.fields = {}
            stored.fields[META_FIELD] = Meta(bytes(request.identity), tag, request.generation).pack()
            stored.fields.update((name, bytes(data)) for name, data in request.fields.items())
            for name in request.removed:
                stored.fields.pop(name, None)
            stored.expires_at = self._expiry(request.ttl)
            return True

    def flush_many(self, requests: Sequence[FlushRequest]) -> list[bool | BackendError]:
        return [self.flush(request) for request in requests]

    def peek_generation(self, kernel_id: str) -> int | None:
        key = self._prefix + validate_kernel_id(kernel_id)
        with self._lock:
            stored = self._live(key)
            return None if stored is None else Meta.unpack(stored.fields[META_FIELD]).generation

    def touch(self, kernel_id: str, ttl: float) -> int | None:
        key = self._prefix + validate_kernel_id(kernel_id)
        with self._lock:
            stored = self._live(key)
            if stored is None:
                return None
            stored.expires_at = self._expiry(ttl)
            return Meta.unpack(stored.fields[META_FIELD]).generation

    def delete(self, kernel_id: str, generation: int | None = None) -> bool:
        key = self._prefix + validate_kernel_id(kernel_id)
        with self._lock:
            stored = self._live(key)
            if stored is None:
                return False
            if generation is not None and Meta.unpack(stored.fields[META_FIELD]).generation != generation:
                return False
            del self._hashes[key]
            return True

    def publish_key_ring(self, instance_id: str, fingerprint: str, max_age: float) -> dict[str, str]:
        now = self._clock()
        with self._lock:
            self._key_rings[instance_id] = (fingerprint, now)
            for other, (_, seen) in list(self._key_rings.items()):
                if seen < now - max_age:
                    del self._key_rings[other]
            return {instance: entry[0] for instance, entry in self._key_rings.items()}

    def ping(self) -> None:
        """Always answers: the data lives in this process."""

    def eviction_policy(self) -> str | None:
        return None

    def close(self) -> None:
        """Nothing to release; the data stays readable for other engines sharing this object."""

    def raw(self, kernel_id: str) -> dict[str, bytes] | None:
        """A copy of the kernel's hash as Redis would hold it (meta fields included), or None."""
        key = self._prefix + validate_kernel_id(kernel_id)
        with self._lock:
            stored = self._live(key)
            return None if stored is None else dict(stored.fields)

    def _expiry(self, ttl: float) -> float:
        return self._clock() + ttl_milliseconds(ttl) / 1000

    def _live(self, key: str) -> _Hash | None:
        """The hash at ``key`` unless it has expired (then it is dropped, as Redis would)."""
        stored = self._hashes.get(key)
        if stored is not None and stored.expires_at <= self._clock():
            del self._hashes[key]
            return None
        return stored

    def _sweep(self) -> None:
        """Drop every expired hash now and then, so abandoned sessions do not pile up."""
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        for key in [key for key, stored in self._hashes.items() if stored.expires_at <= now]:
            del self._hashes[key]
