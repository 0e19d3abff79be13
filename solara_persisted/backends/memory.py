"""The in-process backend: the Redis contract over a dict, for one process and for tests.

It stores exactly the bytes the Redis backend stores (field names as raw bytes, the packed meta
field included), under the same key, so a test on ``memory`` says something about ``redis`` too.
Nothing is shared between processes (``shared = False``): a failover cannot restore from it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from ..address import SHARED_ADDRESS_LENGTH, shared_address
from ..config import Settings
from ..errors import BackendError
from .base import (
    CONNECTION_SLACK,
    META_FIELD,
    STAMP_SIZE,
    Backend,
    FlushRequest,
    Meta,
    Reasserted,
    SessionBudget,
    Takeover,
    pack_stamp,
    tag_digest,
    ttl_milliseconds,
    validate_address,
    validate_claim,
    validate_request,
    validate_shared_address,
)

_META = META_FIELD.encode()

#: How often expired hashes are swept on writes (reads drop them on access anyway).
SWEEP_INTERVAL = 60.0


@attrs.define
class _Hash:
    fields: dict[bytes, bytes]
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

    def takeover(
        self,
        address: str,
        schema_tag: str,
        ttl: float,
        budget: SessionBudget,
        *,
        shared: bool = False,
        claim: int = 0,
        opened: int = 0,
    ) -> Takeover:
        key = self._prefix + validate_address(address)
        validate_claim(claim)
        validate_claim(opened)
        tag = tag_digest(schema_tag)
        with self._lock:
            extra = self._read_shared(key, ttl, budget) if shared else {}
            stored = self._live(key)
            if stored is None:
                if claim:
                    self._hashes[key] = _Hash({_META: Meta.claimed(tag, claim).pack()}, self._expiry(ttl))
                return Takeover("miss", claim, **extra)
            try:
                meta = Meta.unpack(stored.fields[_META])
            except BackendError:
                return Takeover("corrupt", 0, **extra)
            if opened and meta.generation > opened + CONNECTION_SLACK:  # a later connection holds it
                return Takeover("stale", 0)
            generation = max(meta.generation + 1, opened)
            if meta.is_claim and len(stored.fields) == 1:  # claimed, never written: still a miss
                stored.fields[_META] = Meta.claimed(tag, generation).pack()
                stored.expires_at = self._expiry(ttl)
                return Takeover("miss", generation, **extra)
            extra["ttl_left"] = max(stored.expires_at - self._clock(), 0.0)
            bumped = attrs.evolve(meta, generation=generation)
            stored.fields[_META] = bumped.pack()
            stored.expires_at = self._expiry(ttl)
            if meta.tag != tag:
                return Takeover("schema-reset", bumped.generation, meta, **extra)
            values, over = _within(stored, budget)
            if over is not None:
                return Takeover("over-budget", bumped.generation, meta, over=over[0], amount=over[1], **extra)
            return Takeover("restored", bumped.generation, meta, values, **extra)

    def claim(
        self, address: str, schema_tag: str, ttl: float, generation: int, key_ids: Sequence[bytes], opened: int
    ) -> int:
        key = self._prefix + validate_address(address)
        validate_claim(generation)
        validate_claim(opened)
        with self._lock:
            stored = self._live(key)
            if stored is not None:
                try:
                    meta = Meta.unpack(stored.fields[_META])
                except BackendError:
                    pass  # not ours to read: claimed over, as the script does
                else:
                    if not (meta.is_claim or meta.key_id in key_ids):
                        return 0
                    if meta.generation > opened + CONNECTION_SLACK:
                        return -1
                    generation = max(meta.generation + 1, opened)
            self._claim(key, schema_tag, generation, ttl)
            return generation

    def _claim(self, key: str, schema_tag: str, generation: int, ttl: float) -> None:
        """Leave a claim (``Meta.claimed``) as the session's whole hash; the caller holds the lock."""
        self._hashes[key] = _Hash({_META: Meta.claimed(tag_digest(schema_tag), generation).pack()}, self._expiry(ttl))

    def _read_shared(self, key: str, ttl: float, budget: SessionBudget) -> dict[str, Any]:
        stored = self._live(self._shared_key(key))
        if stored is None:
            return {}
        stored.expires_at = self._expiry(ttl)
        values, over = _within(stored, budget)
        if over is not None:
            return {"shared_over": over[0], "shared_amount": over[1]}
        return {"shared": values}

    def _shared_key(self, key: str) -> str:
        return self._prefix + shared_address(key[len(self._prefix) :])

    def flush(self, request: FlushRequest) -> bool:
        validate_request(request)
        key = self._prefix + request.address
        meta_value = request.meta.pack()
        with self._lock:
            self._sweep()
            stored = self._live(key)
            if stored is None:
                if request.must_exist:
                    return False
                stored = self._hashes[key] = _Hash({}, 0.0)
            else:
                meta = Meta.unpack(stored.fields[_META])
                if meta.generation != request.generation:
                    return False
                if not request.must_exist or meta.tag != request.meta.tag:
                    # a write from nothing replaces the values (its manifest signs its own only);
                    # values written under another schema must not be restored
                    stored.fields = {}
            stored.fields[_META] = meta_value
            stored.fields.update((name.encode(), bytes(data)) for name, data in request.fields.items())
            for name in request.removed:
                stored.fields.pop(name.encode(), None)
            stored.expires_at = self._expiry(request.ttl)
            self._write_shared(key, request)
            return True

    def _write_shared(self, key: str, request: FlushRequest) -> None:
        """The shared values of ``request``, each only if it is the newest change of its key."""
        shared_key = self._shared_key(key)
        shared = self._live(shared_key)
        forgotten = int(shared.fields[_META]) if shared is not None and _META in shared.fields else -1

        def newest(name: bytes, stamp: int) -> bool:
            current = shared.fields.get(name) if shared is not None else None
            return stamp > forgotten and (current is None or int(current[:STAMP_SIZE]) <= stamp)

        for field, data in request.shared.items():
            name = field.encode()
            if newest(name, int(data[:STAMP_SIZE])):
                if shared is None:
                    shared = self._hashes[shared_key] = _Hash({}, 0.0)
                shared.fields[name] = bytes(data)
                shared.expires_at = self._expiry(request.ttl)
        for field in request.shared_removed:
            if shared is not None and newest(field.encode(), request.shared_stamp):
                shared.fields.pop(field.encode(), None)

    def forget(self, shared_address: str, stamp: int, ttl: float) -> int:
        key = self._prefix + validate_shared_address(shared_address)
        with self._lock:
            stored = self._live(key)
            previous = int(stored.fields.get(_META, b"-1")) if stored is not None else -1
            dropped = sum(1 for name in stored.fields if name != _META) if stored is not None else 0
            self._hashes[key] = _Hash({_META: pack_stamp(max(previous, stamp))}, self._expiry(ttl))
            return dropped

    def flush_many(self, requests: Sequence[FlushRequest]) -> list[bool | BackendError]:
        for request in requests:  # the whole batch is refused before any of it is written, as on Redis
            validate_request(request)
        return [self.flush(request) for request in requests]

    def peek_generation(self, address: str) -> int | None:
        key = self._prefix + validate_address(address)
        with self._lock:
            stored = self._live(key)
            return None if stored is None else Meta.unpack(stored.fields[_META]).generation

    def reassert(
        self, address: str, schema_tag: str, ttl: float, *, generation: int, manifest: bytes, opened: int
    ) -> Reasserted:
        key = self._prefix + validate_address(address)
        validate_claim(generation)
        validate_claim(opened)
        with self._lock:
            stored = self._live(key)
            if stored is None:
                held = max(generation + 1, opened)
                self._claim(key, schema_tag, held, ttl)
                return Reasserted("claimed", held)
            try:
                meta = Meta.unpack(stored.fields[_META])
            except BackendError:
                return Reasserted("written", 0)  # not ours to read: left as it is
            if meta.generation != generation and meta.generation > opened + CONNECTION_SLACK:
                return Reasserted("later", meta.generation)
            held = max(meta.generation + 1, opened)
            if meta.generation == generation or meta.manifest == manifest:
                stored.fields[_META] = attrs.evolve(meta, generation=held).pack()
                stored.expires_at = self._expiry(ttl)
                return Reasserted("held", held)
            if meta.is_claim and len(stored.fields) == 1:
                self._claim(key, schema_tag, held, ttl)
                return Reasserted("claimed", held)
            return Reasserted("written", meta.generation)

    def delete(self, address: str, generation: int | None = None) -> bool:
        key = self._prefix + validate_address(address)
        with self._lock:
            stored = self._live(key)
            if stored is None:
                return False
            if generation is not None and Meta.unpack(stored.fields[_META]).generation != generation:
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

    def raw(self, address: str) -> dict[bytes, bytes] | None:
        """A copy of the session's hash (or shared hash) as Redis would hold it (meta field included), or None."""
        key = self._prefix + (validate_address(address) if len(address) > SHARED_ADDRESS_LENGTH else address)
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

    #: The meta fields of a hash Solara's built-in engine stored (``solara_format``).
    _SOLARA_META = (b"__generation__", b"__session_id__", b"__version__")

    def take_solara_hash(
        self, key: str, session_hmacs: Sequence[bytes], ttl: float, budget: SessionBudget
    ) -> dict[bytes, bytes] | None:
        """What ``lua/solara_takeover.lua`` does, over the dict (a hash planted at ``key`` by a test)."""
        with self._lock:
            stored = self._live(key)
            if stored is None:
                return None
            fields = stored.fields
            meta = {name: fields[name] for name in self._SOLARA_META if name in fields}
            generation = fields.get(b"__generation__")
            if (
                fields.get(b"__session_id__") not in set(session_hmacs)
                or generation is None
                or len(generation) > 18
                or not generation.removeprefix(b"-").isdigit()
            ):
                return meta
            meta[b"__generation__"] = fields[b"__generation__"] = b"%d" % (int(generation) + 1)
            stored.expires_at = min(stored.expires_at, self._expiry(ttl))
            data = {name: value for name, value in fields.items() if not name.startswith(b"__")}
            total = sum(map(len, data.values()))
            if budget.max_keys and len(data) > budget.max_keys:
                return {**meta, b"__over_budget__": b"keys %d" % len(data)}
            if budget.max_bytes and total > budget.max_bytes:
                return {**meta, b"__over_budget__": b"bytes %d" % total}
            return {**meta, **data}


def _within(stored: _Hash, budget: SessionBudget) -> tuple[dict[bytes, bytes], tuple[str, int] | None]:
    """A hash's values, and which budget they exceed ("keys" or "bytes", and how much) if any."""
    values = {name: data for name, data in stored.fields.items() if name != _META}
    if budget.max_keys and len(values) > budget.max_keys:
        return values, ("keys", len(values))
    total = sum(map(len, values.values()))
    if budget.max_bytes and total > budget.max_bytes:
        return values, ("bytes", total)
    return values, None
