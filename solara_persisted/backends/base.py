"""The contract every state backend keeps: one hash per session address, fenced by a generation.

A kernel's state is one hash (one Redis Cluster slot) at ``SOLARA_STATE_PREFIX`` + its session
address (``address.session_address``: a digest of session cookie and kernel id), holding the
persisted keys plus one meta field named NUL, which no persisted key may start with. A process
gets write rights by a ``takeover`` (which bumps the generation) and loses them as soon as another
process takes over: its flushes then carry a stale generation and are refused. That fencing is
what keeps a superseded instance from overwriting the session's new owner. A takeover that finds
nothing leaves a *claim* (the meta field alone, counter 0), so it fences as well; a page that
started without reading (Redis was unreachable) takes its rights later with ``claim``.

Values a browser session's tabs share (``scope="session"``) live in one more hash, at the
session's ``shared_address``, in the same slot. Many kernels write it, so it has no generation:
each value carries the stamp of the change that made it and the newest change wins per key; a
forget leaves its own stamp behind, and nothing older is written after it. Those writes ride on
a kernel's fenced flush, so a fenced-out instance writes none of them either.
"""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

import attrs

from ..address import ADDRESS, PART_LENGTH
from ..envelope import KEY_ID_SIZE, MANIFEST_MAC_SIZE
from ..errors import BackendError, InvalidIdentifierError

#: Field names starting with NUL are reserved for the backend; persisted keys never do.
META_PREFIX = "\x00"
#: The one meta field of a kernel's hash; its value is a packed ``Meta``.
META_FIELD = META_PREFIX
#: Bytes of SHA-256 kept of the schema tag: enough to notice a changed tag, not a security check.
TAG_DIGEST_SIZE = 4
COUNTER_SIZE = 4
#: Where the generation starts in a packed ``Meta`` (the Lua scripts slice at the same offsets).
GENERATION_AT = TAG_DIGEST_SIZE + KEY_ID_SIZE + COUNTER_SIZE + MANIFEST_MAC_SIZE
#: A shared value starts with its change stamp: microseconds since the epoch, 16 ASCII digits.
STAMP_SIZE = 16
#: Generations stay below 10**18 (18 digits), which the scripts and ``Meta.unpack`` read back.
MAX_GENERATION = 10**18

TakeoverReason = Literal["restored", "miss", "schema-reset", "over-budget", "corrupt", "stale"]
ReassertOutcome = Literal["held", "claimed", "later", "written"]

_KERNEL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


#: The fleet's key-ring fingerprints live next to the sessions' hashes; ':' is never in an address.
KEY_RINGS = "fleet:key-rings"


def pack_stamp(stamp: int) -> bytes:
    """A change stamp as stored (fixed width, so the scripts read it with one ``string.sub``)."""
    return b"%016d" % stamp


def tag_digest(schema_tag: str) -> bytes:
    """The stored form of a schema tag: the first 4 bytes of its SHA-256."""
    return hashlib.sha256(schema_tag.encode("utf-8")).digest()[:TAG_DIGEST_SIZE]


@attrs.frozen
class Meta:
    """The meta field: ``tag digest (4) || key id (4) || counter (4) || manifest MAC (16) || generation``.

    The first four parts are the signed manifest (see ``KeyRing.sign_manifest``): the schema tag
    the state was written under, the key that signed it, a write counter and the MAC over every
    field's envelope tag. The generation is unsigned ASCII decimal, bumped by each takeover, so a
    script can compare it as a string. One packed field instead of one per item keeps a small
    session's hash in a smaller allocation. The Lua scripts mirror this layout.
    """

    tag: bytes
    key_id: bytes
    counter: int
    mac: bytes
    generation: int

    def pack(self) -> bytes:
        return b"".join(
            (
                self.tag,
                self.key_id,
                self.counter.to_bytes(COUNTER_SIZE, "big"),
                self.mac,
                b"%d" % self.generation,
            )
        )

    @classmethod
    def claimed(cls, tag: bytes, generation: int) -> Meta:
        """The meta of a session taken over before anything was written: counter 0, no manifest.

        Written counters start at 1, so a claim is never mistaken for written state."""
        return cls(tag, bytes(KEY_ID_SIZE), 0, bytes(MANIFEST_MAC_SIZE), generation)

    @property
    def is_claim(self) -> bool:
        return self.counter == 0 and self.mac == bytes(MANIFEST_MAC_SIZE)

    @property
    def manifest(self) -> bytes:
        """The packed field less the generation: equal manifests are the same written state."""
        return self.pack()[:GENERATION_AT]

    @classmethod
    def unpack(cls, data: bytes) -> Meta:
        generation = data[GENERATION_AT:]
        if not (generation.isdigit() and generation.isascii()) or len(generation) > 18:
            raise BackendError(
                problem=f"a session's meta field holds {len(data)} bytes that are not a manifest and a "
                "generation",
                fix="keys under SOLARA_STATE_PREFIX must hold only solara-persisted hashes; "
                "give the state its own prefix or database",
            )
        at = TAG_DIGEST_SIZE
        return cls(
            tag=data[:at],
            key_id=data[at : at + KEY_ID_SIZE],
            counter=int.from_bytes(data[at + KEY_ID_SIZE : at + KEY_ID_SIZE + COUNTER_SIZE], "big"),
            mac=data[GENERATION_AT - MANIFEST_MAC_SIZE : GENERATION_AT],
            generation=int(generation),
        )


@attrs.frozen
class SessionBudget:
    """How much one session may hold: persisted keys and envelope bytes (0: no limit)."""

    max_keys: int = 0
    max_bytes: int = 0

    def limit(self, over: str) -> int:
        """The limit a takeover or a write reported as exceeded: ``over`` is "keys" or "bytes"."""
        return self.max_keys if over == "keys" else self.max_bytes


@attrs.frozen
class Takeover:
    """The outcome of a takeover.

    ``generation`` is the write right this process now holds, the bumped counter; 0 on a miss
    (nothing was stored: the engine picks a fresh one) and on a corrupt meta field. ``meta`` is
    the stored manifest (before the bump) on every reason but "miss" and "corrupt"; ``fields``
    holds every stored value, by raw field name, on "restored" and nothing else. ``over`` names
    the exceeded budget ("keys" or "bytes") and ``amount`` how much the session holds.
    ``shared`` are the browser session's shared values (stamped, by raw field name), when asked
    for; ``shared_over`` and ``shared_amount`` say the same of its budget (then nothing is read).
    ``ttl_left``: seconds the kernel's hash had left before the takeover refreshed it (every write
    sets the full TTL, so the difference is how long ago it was last written); None on a miss.
    """

    reason: TakeoverReason
    generation: int
    meta: Meta | None = None
    fields: Mapping[bytes, bytes] = attrs.field(factory=dict)
    over: str | None = None
    amount: int = 0
    shared: Mapping[bytes, bytes] = attrs.field(factory=dict)
    shared_over: str | None = None
    shared_amount: int = 0
    ttl_left: float | None = None


@attrs.frozen
class Reasserted:
    """The outcome of a reconnect's ``reassert``.

    "held": the stored state is what the holder left (or a takeover since only bumped its
    generation), so it holds the session again at ``generation``, values kept. "claimed": nothing
    was stored, or only another holder's claim: the holder claimed it at ``generation`` and must
    write every value again. "later": a connection opened after the reconnect holds the session;
    "written": another holder wrote it since. Both leave it unchanged (``generation`` is the
    stored one, 0 when unreadable), and the reconnected copy is stale.
    """

    outcome: ReassertOutcome
    generation: int

    @property
    def held(self) -> bool:
        return self.outcome in ("held", "claimed")


@attrs.frozen
class FlushRequest:
    """One fenced write of a session's changed keys; ``removed`` keys are deleted in the same step.

    ``meta`` carries the generation the writer holds and the new manifest over the whole hash as
    it will be after this write. ``must_exist``: the manifest covers fields written before, so
    the write is refused if the hash is gone (deleted or expired) rather than leave it partial;
    without it the write starts from nothing and replaces every value the hash holds.
    ``shared`` (stamped values) and ``shared_removed`` (deleted as of ``shared_stamp``) go to the
    browser session's shared hash, each only if no newer change or forget is there.
    """

    address: str
    meta: Meta
    fields: Mapping[str, bytes]
    ttl: float
    removed: tuple[str, ...] = ()
    must_exist: bool = False
    shared: Mapping[str, bytes] = attrs.field(factory=dict)
    shared_removed: tuple[str, ...] = ()
    shared_stamp: int = 0

    @property
    def generation(self) -> int:
        return self.meta.generation


class Backend(abc.ABC):
    """Where session state lives. Every verb is atomic; every failure is a ``BackendError``."""

    #: Whether other processes see this backend's data (a failover can only restore if so).
    shared: ClassVar[bool]

    @abc.abstractmethod
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
        """Check the schema tag and the budget, bump the generation and read every field, atomically.

        Generations follow connections: ``opened`` is when the connection taking over was opened
        (``connection_generation``), the new generation is at least that, and a connection opened
        more than ``CONNECTION_SLACK`` before the one holding the session gets "stale" and changes
        nothing (0: no ordering).

        A miss with a ``claim`` generation writes a claim (``Meta.claimed``): a holder paused
        before its first write is then fenced out like any other, and a later takeover of the
        claim bumps it and is a miss again. ``claim`` 0 (a read for tools and tests) leaves a miss
        unwritten, and so does a server that refuses the write (at ``maxmemory``): the miss's
        generation is then 0. A session over ``budget`` is not read (its generation is bumped so
        that a fenced delete can remove it). With ``shared``, the browser session's shared values
        are read in the same step (within the same budget) and their TTL refreshed.
        """

    @abc.abstractmethod
    def claim(
        self, address: str, schema_tag: str, ttl: float, generation: int, key_ids: Sequence[bytes], opened: int
    ) -> int:
        """Take a session over for a page that read nothing of it, dropping its stored values.

        Bumps the stored generation (to at least ``opened``, as a takeover does; or claims with
        ``generation`` when nothing readable is stored) and leaves a claim (``Meta.claimed``) with
        no values: what the page writes from then on is the session's whole state. Returns the
        generation now held; with nothing changed, 0 when the state was signed with a key not in
        ``key_ids`` and -1 when a connection opened after the page's holds the session.
        """

    @abc.abstractmethod
    def flush(self, request: FlushRequest) -> bool:
        """Write ``request`` if its generation is current or nothing is stored; False when fenced out."""

    @abc.abstractmethod
    def flush_many(self, requests: Sequence[FlushRequest]) -> list[bool | BackendError]:
        """Flush many sessions at once; one result per request, in order.

        Raises ``BackendError`` when the backend could not be reached at all.
        """

    @abc.abstractmethod
    def peek_generation(self, address: str) -> int | None:
        """The stored generation, or None when the session has no state; writes nothing."""

    @abc.abstractmethod
    def reassert(
        self, address: str, schema_tag: str, ttl: float, *, generation: int, manifest: bytes, opened: int
    ) -> Reasserted:
        """A reconnect reached the live kernel that holds ``generation`` and last read or wrote the
        state ``manifest`` (``Meta.manifest``): hold the session again as that connection, opened
        at ``opened``, unless someone since holds it with newer values.

        The stored generation still ours: kept ("held"), bumped to at least ``opened``, the TTL
        refreshed. Else, when a connection opened over ``CONNECTION_SLACK`` after ``opened`` holds
        it: unchanged ("later"). Else kept the same way when its manifest is ours (a takeover since
        read it and wrote nothing); claimed ("claimed", a ``Meta.claimed`` under ``schema_tag``)
        when nothing is stored or only another holder's claim; unchanged otherwise ("written").
        """

    @abc.abstractmethod
    def delete(self, address: str, generation: int | None = None) -> bool:
        """Delete a session's state; with a generation, only while it is still current (fenced)."""

    @abc.abstractmethod
    def forget(self, shared_address: str, stamp: int, ttl: float) -> int:
        """Drop a browser session's shared values, remembering ``stamp`` so that no change made
        before it is written afterwards; returns how many values were dropped."""

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

    @abc.abstractmethod
    def take_solara_hash(
        self, key: str, session_hmacs: Sequence[bytes], ttl: float, budget: SessionBudget
    ) -> dict[bytes, bytes] | None:
        """Take over the hash Solara's built-in engine stored at ``key``, atomically (an engine switch).

        None when there is none. When its ``__session_id__`` is one of ``session_hmacs`` (the
        cookie's HMAC under each key of our ring) and its ``__generation__`` an integer, that
        generation is bumped, so a Solara-engine instance still holding the kernel is refused by
        its own flush check; the TTL is capped at ``ttl`` but never extended; and every field is
        returned, or, over ``budget``, the meta fields and ``__over_budget__`` (``keys <n>`` /
        ``bytes <n>``). Otherwise only the meta fields come back and nothing is written: a
        stranger presenting a kernel id must not fence its owner out. ``solara_format`` reads the reply.
        """


def validate_kernel_id(kernel_id: str) -> str:
    """Return ``kernel_id`` if the engine serves it (Solara assigns UUIDs), else raise."""
    if not isinstance(kernel_id, str) or not _KERNEL_ID.fullmatch(kernel_id):
        raise InvalidIdentifierError(
            problem=f"kernel id {kernel_id!r:.80} is not 1 to 128 characters of A-Z, a-z, 0-9, '_' or '-'",
            fix="pass the kernel id Solara assigned (a UUID), never text taken from a request unchecked",
        )
    return kernel_id


def validate_shared_address(shared_address: str) -> str:
    """Return ``shared_address`` if it is the ``{S}`` part of a session address, else raise."""
    if not isinstance(shared_address, str) or not ADDRESS.fullmatch(shared_address + "A" * PART_LENGTH):
        raise InvalidIdentifierError(
            problem=f"{shared_address!r:.80} is not a shared address",
            fix="derive it with shared_address(address)",
        )
    return shared_address


def validate_address(address: str) -> str:
    """Return ``address`` if it is a session address (``session_address``), else raise."""
    if not isinstance(address, str) or not ADDRESS.fullmatch(address):
        raise InvalidIdentifierError(
            problem=f"{address!r:.80} is not a session address",
            fix="derive it with session_address(cookie, kernel id)",
        )
    return address


#: Connections opened this close together (ms) are not ordered: a takeover's bumps of +1 and
#: the clocks of two hosts may disagree by that much; an old connection a paused instance
#: processes late is older by a reconnect at least.
CONNECTION_SLACK = 50


def connection_generation(opened_at: float) -> int:
    """The generation a connection opened at ``opened_at`` (seconds since the epoch) takes over
    with: milliseconds, so later connections hold higher generations (13 digits until 2286)."""
    return int(opened_at * 1000)


def validate_claim(generation: int) -> int:
    """Refuse a claim generation a takeover could not read back (0: claim nothing)."""
    if not 0 <= generation < MAX_GENERATION:
        raise InvalidIdentifierError(
            problem=f"claim generation {generation} is outside 0..{MAX_GENERATION - 1}",
            fix="claim with restore.fresh_generation()",
        )
    return generation


def validate_request(request: FlushRequest) -> None:
    """Refuse a flush that could corrupt the hash: a bad address or meta, a field posing as meta."""
    validate_address(request.address)
    meta = request.meta
    if (len(meta.tag), len(meta.key_id), len(meta.mac)) != (
        TAG_DIGEST_SIZE,
        KEY_ID_SIZE,
        MANIFEST_MAC_SIZE,
    ) or not (0 < meta.counter < 1 << (8 * COUNTER_SIZE)):
        raise InvalidIdentifierError(
            problem=f"the manifest of session {request.address} has the wrong shape",
            fix="build it with KeyRing.sign_manifest",
        )
    if not 0 < meta.generation < MAX_GENERATION:
        raise InvalidIdentifierError(
            problem=f"generation {meta.generation} of session {request.address} is outside "
            f"1..{MAX_GENERATION - 1}, which a takeover could not read back",
            fix="write with the generation a takeover gave",
        )
    if request.shared_stamp and not 0 < request.shared_stamp < 10**STAMP_SIZE:
        raise InvalidIdentifierError(
            problem=f"the change stamp {request.shared_stamp} of session {request.address} is not 1 to "
            f"{STAMP_SIZE} digits",
            fix="stamp changes with worker.next_stamp()",
        )
    for data in request.shared.values():
        if len(data) < STAMP_SIZE or not data[:STAMP_SIZE].isdigit():
            raise InvalidIdentifierError(
                problem=f"a shared value of session {request.address} does not start with its change stamp",
                fix="prefix it with pack_stamp()",
            )
    for field in (*request.fields, *request.removed, *request.shared, *request.shared_removed):
        if not field or field.startswith(META_PREFIX):
            raise InvalidIdentifierError(
                problem=f"field {field!r} of session {request.address} is empty or starts with NUL, which "
                "is reserved for backend meta fields",
                fix="write only keys declared with persisted()",
            )


def ttl_milliseconds(ttl: float) -> int:
    """A TTL in whole milliseconds, at least 1 (Redis refuses 0 and a negative one deletes)."""
    return max(1, round(ttl * 1000))
