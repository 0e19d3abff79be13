"""The contract every state backend keeps: one hash per kernel, fenced by a generation counter.

A kernel's state is one hash (one Redis Cluster slot) holding the persisted keys plus one meta
field named NUL, which no persisted key may start with. A process gets write rights by a
``takeover`` (which bumps the generation) and loses them as soon as another process takes over:
its flushes then carry a stale generation and are refused. That fencing is what keeps a
superseded instance from overwriting the session's new owner.
"""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

import attrs

from ..envelope import IDENTITY_SIZE
from ..errors import BackendError, InvalidIdentifierError

#: Field names starting with NUL are reserved for the backend; persisted keys never do.
META_PREFIX = "\x00"
#: The one meta field of a kernel's hash; its value is a packed ``Meta``.
META_FIELD = META_PREFIX
#: Bytes of SHA-256 kept of the schema tag: enough to notice a changed tag, not a security check.
TAG_DIGEST_SIZE = 4
#: Where the generation starts in a packed ``Meta`` (the Lua scripts slice at the same offsets).
GENERATION_AT = IDENTITY_SIZE + TAG_DIGEST_SIZE

TakeoverReason = Literal["restored", "miss", "identity-mismatch", "schema-reset"]

_KERNEL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


#: The fleet's key-ring fingerprints live next to the kernels' hashes; ':' is never in a kernel id.
KEY_RINGS = "fleet:key-rings"


def tag_digest(schema_tag: str) -> bytes:
    """The stored form of a schema tag: the first 4 bytes of its SHA-256."""
    return hashlib.sha256(schema_tag.encode("utf-8")).digest()[:TAG_DIGEST_SIZE]


@attrs.frozen
class Meta:
    """The meta field's value: ``identity (20 bytes) || tag digest (4 bytes) || generation``.

    The generation is ASCII decimal so a script can compare it as a string. One packed field
    instead of one field per item saves the listpack an entry header and name for each, which is
    what keeps a small session's hash in a smaller allocation. The Lua scripts mirror this layout.
    """

    identity: bytes
    tag: bytes
    generation: int

    def pack(self) -> bytes:
        return b"".join((self.identity, self.tag, b"%d" % self.generation))

    @classmethod
    def unpack(cls, data: bytes) -> Meta:
        generation = data[GENERATION_AT:]
        if not generation.isdigit():
            raise BackendError(
                f"a kernel's meta field holds {len(data)} bytes that are not identity, tag digest and "
                "generation. Fix: keys under SOLARA_STATE_PREFIX must hold only solara-persisted hashes; "
                "give the state its own prefix or database"
            )
        return cls(data[:IDENTITY_SIZE], data[IDENTITY_SIZE:GENERATION_AT], int(generation))


@attrs.frozen
class Takeover:
    """The outcome of a takeover.

    ``generation`` is the write right this process now holds: 1 on a miss (nothing was written,
    the first flush creates the hash), 0 on an identity mismatch (no right at all), the bumped
    counter otherwise. ``fields`` holds every stored value on "restored" and nothing else.
    ``stored_tag`` (on "schema-reset") is the hex of the stored tag's 4-byte digest: only the
    digest is stored, so compare it with ``tag_digest(tag).hex()``.
    """

    reason: TakeoverReason
    generation: int
    fields: Mapping[str, bytes] = attrs.field(factory=dict)
    stored_identity: bytes | None = None
    stored_tag: str | None = None


@attrs.frozen
class FlushRequest:
    """One fenced write of a kernel's changed keys; ``removed`` keys are deleted in the same step."""

    kernel_id: str
    generation: int
    identity: bytes
    schema_tag: str
    fields: Mapping[str, bytes]
    ttl: float
    removed: tuple[str, ...] = ()


class Backend(abc.ABC):
    """Where kernel state lives. Every verb is atomic; every failure is a ``BackendError``."""

    #: Whether other processes see this backend's data (a failover can only restore if so).
    shared: ClassVar[bool]

    @abc.abstractmethod
    def takeover(self, kernel_id: str, identities: Sequence[bytes], schema_tag: str, ttl: float) -> Takeover:
        """Verify the session identity, check the schema tag, bump the generation and read every field.

        ``identities`` are the accepted identities (one per key of the ring): a stored identity
        equal to none of them belongs to another session. Never writes on a miss.
        """

    @abc.abstractmethod
    def flush(self, request: FlushRequest) -> bool:
        """Write ``request`` if its generation is current; False when fenced out (nothing written)."""

    @abc.abstractmethod
    def flush_many(self, requests: Sequence[FlushRequest]) -> list[bool | BackendError]:
        """Flush many kernels at once; one result per request, in order.

        Raises ``BackendError`` when the backend could not be reached at all.
        """

    @abc.abstractmethod
    def peek_generation(self, kernel_id: str) -> int | None:
        """The stored generation, or None when the kernel has no state; writes nothing."""

    @abc.abstractmethod
    def touch(self, kernel_id: str, ttl: float) -> int | None:
        """A reconnect is activity: refresh the state's TTL and return its generation.

        None when the kernel has no state; then nothing is written.
        """

    @abc.abstractmethod
    def delete(self, kernel_id: str, generation: int | None = None) -> bool:
        """Delete a kernel's state; with a generation, only while it is still current (fenced)."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ``BackendError`` unless the backend answers."""

    @abc.abstractmethod
    def publish_key_ring(self, instance_id: str, fingerprint: str, max_age: float) -> dict[str, str]:
        """Record this instance's key-ring fingerprint; return every instance's seen within ``max_age``.

        Mismatched ``SOLARA_STATE_SECRET_KEYS`` across replicas is the most common cause of silent
        restore failure; comparing fingerprints (never the keys) makes it visible fleet-wide.
        """

    @abc.abstractmethod
    def eviction_policy(self) -> str | None:
        """The server's ``maxmemory-policy``, or None when there is none or it cannot be read."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the backend is not used afterwards."""


def validate_kernel_id(kernel_id: str) -> str:
    """Return ``kernel_id`` if it can safely become part of a backend key, else raise."""
    if not isinstance(kernel_id, str) or not _KERNEL_ID.fullmatch(kernel_id):
        raise InvalidIdentifierError(
            f"kernel id {kernel_id!r} is not 1 to 128 characters of A-Z, a-z, 0-9, '_' or '-'. "
            "Fix: pass the kernel id Solara assigned (a UUID), never text taken from a request unchecked"
        )
    return kernel_id


def validate_identity(identity: bytes, kernel_id: str) -> bytes:
    """Return ``identity`` if it has the key ring's identity size, else raise.

    A wrong size could never match a stored identity, so it would pass silently as a mismatch.
    """
    if len(identity) != IDENTITY_SIZE:
        raise InvalidIdentifierError(
            f"session identity for kernel {kernel_id} is {len(identity)} bytes, not {IDENTITY_SIZE}. "
            "Fix: pass identities made by KeyRing.identities()"
        )
    return identity


def validate_request(request: FlushRequest) -> None:
    """Refuse a flush that could corrupt the hash: a bad kernel id or identity, a field posing as meta."""
    validate_kernel_id(request.kernel_id)
    validate_identity(request.identity, request.kernel_id)
    for field in (*request.fields, *request.removed):
        if not field or field.startswith(META_PREFIX):
            raise InvalidIdentifierError(
                f"field {field!r} of kernel {request.kernel_id} is empty or starts with NUL, which is "
                "reserved for backend meta fields. Fix: write only keys declared with persisted()"
            )


def ttl_milliseconds(ttl: float) -> int:
    """A TTL in whole milliseconds, at least 1 (Redis refuses 0 and a negative one deletes)."""
    return max(1, round(ttl * 1000))
