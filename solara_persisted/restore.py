"""Restore: take over a session's stored state on connect, verify it, decode it, or bail out.

All or nothing: a takeover reads the kernel's hash (and the browser session's shared one) in one
fenced step that also grants this process the write rights; the signed manifest is checked before
anything is decoded; every value is verified, migrated where its version is older (or, through a
reversible chain, newer), and structured into its declared type. Any failure is a bail-out: the
poisoned state is deleted, the cause counted and logged, and the session starts fresh. A miss
claims the session (so a holder paused before its first write is fenced out too) and looks for it
in the format of Solara's own engine, for a fleet switching engines. A page that started without
a claim (Redis unreachable, or its state poisoned) is claimed by ``claim`` once Redis answers.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

import attrs

from . import migrations
from .address import session_address, shared_address
from .backends import Backend
from .backends.base import (
    STAMP_SIZE,
    TAG_DIGEST_SIZE,
    Meta,
    Reasserted,
    SessionBudget,
    Takeover,
    connection_generation,
    tag_digest,
    validate_kernel_id,
)
from .breaker import BackendGuard
from .config import Settings
from .envelope import TAG_SIZE, KeyRing, open_envelope, shared_binding
from .errors import (
    BackendError,
    BreakerOpen,
    CodecError,
    EnvelopeError,
    InvalidIdentifierError,
    MalformedEnvelopeError,
    MigrationError,
    TamperedError,
)
from .events import Events, RestoreResult, quote
from .solara_format import SOURCE, SolaraEngineSettings, read_solara_session, session_hmacs
from .spec import Registry
from .storm import StormValve
from .worker import next_stamp

logger = logging.getLogger("solara.state")

#: A session that starts from nothing stored claims a random generation, not 1: a claim that
#: expired or was deleted must not be re-claimed with the generation its old holder still has.
FRESH_GENERATIONS = (1 << 32, 1 << 33)


class _NewerVersion(Exception):
    """A value written by a newer deploy that no reversible migration chain reads here."""

    def __init__(self, field: str, error: MigrationError) -> None:
        super().__init__(field)
        self.field = field
        self.error = error


@attrs.define
class _Shared:
    """What a restore read of the browser session's shared hash: values, the hash as seen, bytes
    read, keys migrated (from which version), the newest change's stamp, and the change stamps of
    the values verified under a non-primary key (to re-sign)."""

    values: dict[str, Any] = attrs.field(factory=dict)
    stored: dict[str, tuple[bytes, int]] = attrs.field(factory=dict)
    nbytes: int = 0
    migrated: dict[str, int] = attrs.field(factory=dict)
    newest: int = 0
    resign: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class _Opened:
    """One verified, decoded value; ``migrated_from`` is the version it was stored at, if older
    or newer than the declared one."""

    value: Any
    key_index: int
    migrated_from: int | None


@attrs.frozen
class Restored:
    """What a takeover gave this process: values to install and the write rights it holds.

    ``generation`` 0 means no write rights (a refused kernel id, or state signed with secrets
    this instance lacks). ``claimed`` is False when the generation is a placeholder that nothing
    in the backend fences with (the backend was not reached, or the poisoned state was deleted):
    the writer then claims the session before its first write (``Restorer.claim``), ordered by
    ``opened``, the connection's ``connection_generation``. ``resign`` are keys verified under a non-primary secret; they are
    rewritten on open. ``stored`` (field -> (envelope tag, size)) and ``counter`` describe the hash
    as stored, which the writer's manifests continue from; ``shared`` the same of the browser
    session's shared hash. ``migrated`` maps keys read through a migration to the version they
    were stored at; ``age`` is seconds since the restored state was last written. ``manifest`` is
    the stored state's ``Meta.manifest`` as the takeover found it (a claim's when it claimed a
    miss): a reconnect's ``Restorer.reassert`` tells by it whether anyone wrote since. ``stamps``
    are the change stamps (µs) of the shared keys in ``resign``: a re-sign is written as of that
    change, so it never wins over a newer change from another tab.
    """

    result: RestoreResult
    generation: int
    values: Mapping[str, Any] = attrs.field(factory=dict)
    resign: frozenset[str] = frozenset()
    cause: str | None = None
    address: str = ""
    stored: Mapping[str, tuple[bytes, int]] = attrs.field(factory=dict)
    counter: int = 0
    shared: Mapping[str, tuple[bytes, int]] = attrs.field(factory=dict)
    migrated: Mapping[str, int] = attrs.field(factory=dict)
    age: float | None = None
    claimed: bool = True
    opened: int = 0
    manifest: bytes = b""
    stamps: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def bailed_out(self) -> bool:
        return self.result == RestoreResult.BAILOUT


def fresh_generation() -> int:
    """A random generation for a session that has nothing stored yet (see ``FRESH_GENERATIONS``)."""
    low, high = FRESH_GENERATIONS
    return low + secrets.randbelow(high - low)


def _unclaimed(result: RestoreResult, address: str, **details: Any) -> Restored:
    """A start that holds no claim in the backend: write rights come with ``Restorer.claim``."""
    return Restored(result, generation=fresh_generation(), address=address, claimed=False, **details)


def _rights(takeover: Takeover) -> dict[str, Any]:
    """The write rights a takeover gave; a placeholder, unclaimed, when the backend refused a
    miss's claim (at ``maxmemory``)."""
    if takeover.generation:
        return {"generation": takeover.generation}
    return {"generation": fresh_generation(), "claimed": False}


def _cause(error: Exception) -> str:
    """The ``cause=`` of a bail-out: ``hmac`` for a failed MAC, ``envelope`` for broken framing
    (never ``codec``, which the runbook reads as a type change), else the decoder's own cause."""
    if isinstance(error, TamperedError):
        return "hmac"
    if isinstance(error, EnvelopeError):
        return "envelope"
    return getattr(error, "cause", "codec")


class Restorer:
    """Turns a connection's kernel id and session cookie into a ``Restored``; never raises."""

    def __init__(
        self,
        settings: Settings,
        *,
        ring: KeyRing,
        backend: Backend,
        guard: BackendGuard,
        registry: Registry,
        events: Events,
        budget: SessionBudget,
        storm: StormValve,
        schema_tag: str,
    ) -> None:
        self.settings = settings
        self.ring = ring
        self.backend = backend
        self.guard = guard
        self.registry = registry
        self.events = events
        self.budget = budget
        self.storm = storm
        self.schema_tag = schema_tag
        #: Where Solara's built-in engine kept sessions, for a fleet switching engines (read once).
        self._solara = SolaraEngineSettings.from_env()

    def restore(self, kernel_id: str, session_id: str, opened_at: float | None = None) -> Restored:
        """Take over ``kernel_id``'s state for the session cookie ``session_id``: all-or-nothing, never raising.

        The state lives at the digest of both (``session_address``), so another cookie presenting
        the same kernel id addresses another, empty hash: a kernel id alone gets nothing. The
        values the cookie's tabs share (``scope="session"``) are read in the same step.
        """
        try:
            validate_kernel_id(kernel_id)
        except InvalidIdentifierError as error:
            logger.warning("restore skipped kernel=%s: %s", quote(kernel_id[:128]), error)
            return Restored(RestoreResult.SKIPPED, generation=0)
        address = session_address(session_id, kernel_id)
        opened = connection_generation(time.time() if opened_at is None else opened_at)
        try:
            takeover = self.guard.call(
                self.backend.takeover,
                address,
                self.schema_tag,
                self.settings.ttl,
                self.budget,
                shared=self.registry.has_session_scope(),
                claim=opened,
                opened=opened,
            )
        except BreakerOpen:
            # degraded: no read, no connect-time tax
            return _unclaimed(RestoreResult.SKIPPED, address, opened=opened)
        except BackendError:
            self.events.restore(RestoreResult.TIMEOUT, kernel_id)
            return _unclaimed(RestoreResult.TIMEOUT, address, opened=opened)
        if takeover.reason == "stale":
            logger.info(
                "restore skipped kernel=%s: a connection opened after this one holds the session; "
                "this copy is closed as superseded",
                quote(kernel_id),
            )
            return Restored(RestoreResult.SKIPPED, generation=0, cause="superseded", address=address)
        restored = self._settle(kernel_id, session_id, address, takeover)
        if not restored.claimed:
            restored = attrs.evolve(restored, opened=opened)
        elif takeover.meta is not None:
            restored = attrs.evolve(restored, manifest=takeover.meta.manifest)
        elif takeover.generation:
            restored = attrs.evolve(restored, manifest=Meta.claimed(tag_digest(self.schema_tag), 0).manifest)
        self.storm.record(restored.bailed_out)  # a restore that read something: the valve's sample
        return restored

    def claim(self, kernel_id: str, address: str, opened: int) -> int:
        """Take write rights for a page that started without them (``Restored.claimed`` False).

        The page shows what it started with (nothing was read) and the changes made since, so
        that is the session's state from now on: the claim fences out every earlier holder and
        drops the stored values, which a later restore would otherwise mix with the page's or
        bring back after the page showed them gone. Returns the generation now held; 0 when the
        stored state is signed with a secret this instance lacks (left for the instances that
        hold it; the page writes nothing); -1 when a connection opened after the page's (``opened``)
        holds the session (the page is superseded). Raises ``BackendError`` when the backend cannot be
        reached (the writer tries again later).
        """
        generation = self.guard.call_allowed(
            self.backend.claim, address, self.schema_tag, self.settings.ttl, opened, self.ring.key_ids, opened
        )
        if generation < 0:
            logger.info("claim of kernel=%s refused: a connection opened later holds the session", quote(kernel_id))
        elif generation:
            logger.info("claim kernel=%s after a start that read nothing: generation=%d", quote(kernel_id), generation)
        else:
            logger.warning(
                "claim of kernel=%s after a start that read nothing refused: its state is signed with a secret "
                "this instance lacks; the changes made here are not written",
                quote(kernel_id),
            )
        return generation

    def reassert(self, kernel_id: str, address: str, generation: int, manifest: bytes, opened: int) -> Reasserted:
        """A reconnect to the live kernel holding ``generation``, opened at ``opened`` (ms): hold
        the session again as that newer connection (``Backend.reassert``) unless someone since
        holds it with newer values. Raises ``BackendError`` when the backend cannot be reached
        (the writer tries again before the kernel's next write)."""
        answer = self.guard.call_allowed(
            self.backend.reassert,
            address,
            self.schema_tag,
            self.settings.ttl,
            generation=generation,
            manifest=manifest,
            opened=opened,
        )
        if answer.outcome == "claimed":
            logger.info(
                "reconnect to kernel=%s found its state gone or claimed by an earlier connection: "
                "claimed at generation=%d, every value is written again",
                quote(kernel_id),
                answer.generation,
            )
        elif not answer.held:
            why = "a connection opened later holds" if answer.outcome == "later" else "another instance wrote"
            logger.info(
                "reconnect to kernel=%s refused: %s the session (generation %d, ours %d); "
                "this copy is closed as superseded",
                quote(kernel_id),
                why,
                answer.generation,
                generation,
            )
        return answer

    def _settle(self, kernel_id: str, session_id: str, address: str, takeover: Takeover) -> Restored:
        if takeover.reason == "miss":
            switched = self._restore_from_solara(kernel_id, session_id, address, takeover)
            if switched is not None:
                return switched
            return self._settle_miss(kernel_id, session_id, address, takeover)
        if takeover.reason == "corrupt":
            return self._bail_out(kernel_id, address, None, None, "manifest", "its meta field is not ours")
        meta = takeover.meta
        assert meta is not None
        if not self.ring.owns(meta.key_id):
            # Signed under a secret this instance lacks: the runbook's #1 cause, so be loud. The state
            # is left as it is (no write rights here) for the instances that hold that secret.
            self.events.restore(RestoreResult.BAILOUT, kernel_id, cause="hmac")
            return Restored(RestoreResult.BAILOUT, generation=0, cause="hmac", address=address)
        if takeover.reason == "schema-reset":
            # Nothing is read; the first write wipes the old tag's fields (so the manifest starts empty).
            shared = self._decode_shared(kernel_id, address, takeover)
            if isinstance(shared, Restored):
                return shared
            self.events.restore(RestoreResult.FRESH_SCHEMA, kernel_id)
            return Restored(
                RestoreResult.FRESH_SCHEMA,
                generation=takeover.generation,
                address=address,
                counter=meta.counter,
                values=shared.values,
                resign=frozenset(shared.resign),
                shared=shared.stored,
                migrated=shared.migrated,
                age=self._age(takeover, shared),
                stamps=shared.resign,
            )
        if takeover.reason == "over-budget":
            limit = self.budget.limit(takeover.over)
            problem = f"the session holds {takeover.amount} {takeover.over}, over its budget of {limit}"
            return self._bail_out(kernel_id, address, takeover.generation, None, "budget", problem)
        if not self.ring.verify_manifest(
            key_id=meta.key_id,
            mac=meta.mac,
            address=address,
            tag=meta.tag,
            counter=meta.counter,
            envelopes=takeover.fields,
        ):
            problem = (
                "its fields are not the set its manifest signs (a field was rolled back, removed or added)"
            )
            return self._bail_out(kernel_id, address, takeover.generation, None, "manifest", problem)
        return self._decode_all(kernel_id, address, takeover)

    def _restore_from_solara(
        self, kernel_id: str, session_id: str, address: str, takeover: Takeover
    ) -> Restored | None:
        """Our hash is a miss: a fleet switching from Solara's built-in engine may hold the session in
        Solara's format. Take that hash (cookie checked, Solara's writer fenced out), verify and
        decode it; restored keys go in ``resign``, so the session's first write puts them all in our
        format. None when there is nothing of this session's there (no hash, an empty claim, another
        browser's), which leaves the miss to ``_settle_miss``. Solara's hash is left to its TTL.

        One more round trip, on a miss only: a restore that finds our state (a failover) pays nothing.
        """
        try:
            fields = self.guard.call_allowed(
                self.backend.take_solara_hash,
                self._solara.hash_key(kernel_id),
                session_hmacs(session_id, self.settings.secret_keys),
                self.settings.ttl,
                self.budget,
            )
        except BackendError:
            self.events.restore(RestoreResult.TIMEOUT, kernel_id, source=SOURCE)
            return Restored(RestoreResult.TIMEOUT, address=address, **_rights(takeover))
        if fields is None:
            return None  # the usual miss: a new kernel, or a fleet that never ran Solara's engine
        secret_keys = self.settings.secret_keys
        read = read_solara_session(
            fields,
            kernel_id=kernel_id,
            session_id=session_id,
            secrets=secret_keys,
            schema_tag=self._solara.schema_tag,
            registry=self.registry,
            max_value_bytes=self.settings.max_value_bytes,
            allow_pickle=self.settings.allow_pickle,
        )
        for key in read.undeclared:
            logger.info("restore skipped undeclared key=%s kernel=%s", quote(key), quote(kernel_id))
        for key, size, cap in read.oversize:
            self.events.oversize(key, kernel_id, size, cap, dropped=True)
        source = SOURCE
        if read.outcome == "foreign-session":
            logger.info(
                "restore found kernel=%s in Solara's engine format under another browser session; not read",
                quote(kernel_id),
            )
        if read.outcome in ("miss", "foreign-session"):
            return None
        if read.outcome == "schema-mismatch":
            self.events.restore(RestoreResult.FRESH_SCHEMA, kernel_id, source=source)
            return Restored(RestoreResult.FRESH_SCHEMA, address=address, **_rights(takeover))
        if read.outcome == "bailout":
            logger.warning(
                "restore of key=%s kernel=%s from Solara's engine format failed: %s",
                quote(read.key or "*"),
                quote(kernel_id),
                read.problem,
            )
            self.events.restore(
                RestoreResult.BAILOUT, kernel_id, key=read.key, cause=read.cause, source=source
            )
            return Restored(RestoreResult.BAILOUT, cause=read.cause, address=address, **_rights(takeover))
        shared = self._decode_shared(kernel_id, address, takeover)
        if isinstance(shared, Restored):
            return shared
        self.events.restore(
            RestoreResult.SUCCESS, kernel_id, nbytes=read.nbytes + shared.nbytes, source=source
        )
        values = dict(read.values)
        return Restored(
            RestoreResult.SUCCESS,
            values={**values, **shared.values},  # a session-scoped value already in our format is newer
            resign=frozenset(values.keys() - shared.values.keys()),
            address=address,
            shared=shared.stored,
            **_rights(takeover),
        )

    def _settle_miss(self, kernel_id: str, session_id: str, address: str, takeover: Takeover) -> Restored:
        """Nothing stored for this kernel: a new page (or reload) of the session, or an unknown id."""
        shared = self._decode_shared(kernel_id, address, takeover)
        if isinstance(shared, Restored):
            return shared
        if shared.values:
            # A reload or a new tab: the session's shared values, and fresh write rights of its own.
            self.events.restore(RestoreResult.SUCCESS, kernel_id, nbytes=shared.nbytes)
            return Restored(
                RestoreResult.SUCCESS,
                values=shared.values,
                resign=frozenset(shared.resign),
                address=address,
                shared=shared.stored,
                migrated=shared.migrated,
                age=self._age(takeover, shared),
                stamps=shared.resign,
                **_rights(takeover),
            )
        self.events.restore(RestoreResult.MISS, kernel_id)
        return Restored(RestoreResult.MISS, address=address, shared=shared.stored, **_rights(takeover))

    def _open_value(
        self, kernel_id: str, field: str, data: bytes, address: str, bound: str
    ) -> _Opened | None:
        """Verify and decode one stored value; None when it is skipped (undeclared, over its cap).

        Raises ``EnvelopeError`` / ``CodecError``, and ``_NewerVersion`` when only a newer deploy
        can read it."""
        spec = self.registry.resolve(field)
        if spec is None:
            logger.info("restore skipped undeclared key=%s kernel=%s", quote(field), quote(kernel_id))
            return None
        cap = self.settings.max_value_bytes if spec.max_bytes is None else spec.max_bytes
        if cap and len(data) > cap:
            # Over the cap it was written under (a lowered cap, or not ours): never decoded.
            self.events.oversize(field, kernel_id, len(data), cap, dropped=True)
            return None
        opened = open_envelope(self.ring, data, address=address, field=bound)
        if opened.codec != spec.codec_id:
            raise CodecError(
                field, "", f"stored with codec {opened.codec.name}, declared {spec.codec_id.name}"
            )
        if opened.version > spec.version:
            # Written by a newer deploy: read it through a reversible chain, else start fresh here;
            # either way the newer state is left untouched for newer instances.
            try:
                value = migrations.convert(spec, field, opened.version, opened.payload)
            except MigrationError as error:
                raise _NewerVersion(field, error) from None
            return _Opened(value, opened.key_index, opened.version)
        if opened.version < spec.version:
            value = migrations.convert(spec, field, opened.version, opened.payload)
            return _Opened(value, opened.key_index, opened.version)
        return _Opened(spec.type_codec.loads(opened.payload), opened.key_index, None)

    def _newer_version(
        self, kernel_id: str, address: str, takeover: Takeover, newer: _NewerVersion
    ) -> Restored:
        logger.info(
            "restore of key=%s kernel=%s at a newer version: %s",
            quote(newer.field),
            quote(kernel_id),
            newer.error,
        )
        self.events.restore(RestoreResult.FRESH_SCHEMA, kernel_id, key=newer.field, cause="newer-version")
        return Restored(
            RestoreResult.FRESH_SCHEMA, cause="newer-version", address=address, **_rights(takeover)
        )

    def _decode_all(self, kernel_id: str, address: str, takeover: Takeover) -> Restored:
        values: dict[str, Any] = {}
        resign: set[str] = set()
        stored: dict[str, tuple[bytes, int]] = {}
        migrated: dict[str, int] = {}
        nbytes = 0
        for raw, data in takeover.fields.items():
            try:
                field = raw.decode("utf-8")
            except UnicodeDecodeError:
                error = MalformedEnvelopeError(f"a field name of {len(raw)} bytes is not UTF-8")
                return self._bail_out(kernel_id, address, takeover.generation, None, "envelope", error)
            stored[field] = (data[-TAG_SIZE:], len(data))  # what the writer's next manifest signs for it
            spec = self.registry.resolve(field)
            if spec is not None and spec.scope == "session":
                logger.info(
                    "restore skipped key=%s kernel=%s: declared scope=session now",
                    quote(field),
                    quote(kernel_id),
                )
                continue
            try:
                opened = self._open_value(kernel_id, field, data, address, field)
            except _NewerVersion as newer:
                return self._newer_version(kernel_id, address, takeover, newer)
            except (EnvelopeError, CodecError) as error:
                return self._bail_out(kernel_id, address, takeover.generation, field, _cause(error), error)
            if opened is None:
                continue
            values[field] = opened.value
            nbytes += len(data)
            if opened.key_index:
                resign.add(field)
            if opened.migrated_from is not None:
                migrated[field] = opened.migrated_from
        shared = self._decode_shared(kernel_id, address, takeover)
        if isinstance(shared, Restored):
            return shared
        self.events.restore(RestoreResult.SUCCESS, kernel_id, nbytes=nbytes + shared.nbytes)
        meta = takeover.meta
        assert meta is not None
        return Restored(
            RestoreResult.SUCCESS,
            generation=takeover.generation,
            values={**values, **shared.values},
            resign=frozenset(resign | shared.resign.keys()),
            address=address,
            stored=stored,
            counter=meta.counter,
            shared=shared.stored,
            migrated={**migrated, **shared.migrated},
            age=self._age(takeover, shared),
            stamps=shared.resign,
        )

    def _decode_shared(self, kernel_id: str, address: str, takeover: Takeover) -> _Shared | Restored:
        """The browser session's shared values that this schema wrote, or the bail-out they cause.

        Each is checked against the stamp and schema tag stored with it (both are signed), so
        a value written under another ``SOLARA_STATE_SCHEMA_TAG`` is skipped, not a failure.
        """
        shared = _Shared()
        at = shared_address(address)
        if takeover.shared_over is not None:
            limit = self.budget.limit(takeover.shared_over)
            problem = (
                f"the browser session's shared state holds {takeover.shared_amount} {takeover.shared_over}, "
                f"over its budget of {limit}"
            )
            return self._bail_out_shared(kernel_id, address, takeover, None, "budget", problem)
        tag = tag_digest(self.schema_tag)
        for raw, data in takeover.shared.items():
            try:
                field = raw.decode("utf-8")
                stamp = int(data[:STAMP_SIZE])
            except (UnicodeDecodeError, ValueError):
                error = MalformedEnvelopeError(f"a shared field of {len(raw)} bytes is not a stamped value")
                return self._bail_out_shared(kernel_id, address, takeover, None, "envelope", error)
            envelope = data[STAMP_SIZE + TAG_DIGEST_SIZE :]
            shared.stored[field] = (envelope[-TAG_SIZE:], len(envelope))
            if data[STAMP_SIZE : STAMP_SIZE + TAG_DIGEST_SIZE] != tag:
                continue  # another schema's: left for the instances that run it
            spec = self.registry.resolve(field)
            if spec is not None and spec.scope != "session":
                logger.info(
                    "restore skipped shared key=%s kernel=%s: declared scope=kernel now",
                    quote(field),
                    quote(kernel_id),
                )
                continue
            try:
                opened = self._open_value(kernel_id, field, envelope, at, shared_binding(field, stamp, tag))
            except _NewerVersion as newer:
                return self._newer_version(kernel_id, address, takeover, newer)
            except (EnvelopeError, CodecError) as error:
                return self._bail_out_shared(kernel_id, address, takeover, field, _cause(error), error)
            if opened is not None:
                shared.values[field] = opened.value
                shared.nbytes += len(data)
                shared.newest = max(shared.newest, stamp)
                if opened.migrated_from is not None:
                    shared.migrated[field] = opened.migrated_from
                if opened.key_index:
                    shared.resign[field] = stamp
        return shared

    def _age(self, takeover: Takeover, shared: _Shared) -> float | None:
        """Seconds since the restored state was last written: the kernel hash's TTL spent, or the
        newest shared change."""
        ages = []
        if takeover.ttl_left is not None:
            ages.append(max(self.settings.ttl - takeover.ttl_left, 0.0))
        if shared.newest:
            ages.append(max(time.time() - shared.newest / 1e6, 0.0))
        return min(ages, default=None)

    def _bail_out_shared(
        self,
        kernel_id: str,
        address: str,
        takeover: Takeover,
        field: str | None,
        cause: str,
        error: Exception | str,
    ) -> Restored:
        """A poisoned shared hash: forgotten (no tab can read it), and this restore bails out."""
        with contextlib.suppress(BackendError):  # recorded by the guard; the next restore bails out again
            self.guard.call_allowed(
                self.backend.forget, shared_address(address), next_stamp(), self.settings.ttl
            )
        return self._bail_out(kernel_id, address, takeover.generation or None, field, cause, error)

    def _bail_out(
        self,
        kernel_id: str,
        address: str,
        generation: int | None,
        field: str | None,
        cause: str,
        error: Exception | str,
    ) -> Restored:
        """Give up on this session's stored state: log, delete it (poisoned) and count the bail-out."""
        logger.warning("restore of key=%s kernel=%s failed: %s", quote(field or "*"), quote(kernel_id), error)
        with contextlib.suppress(BackendError):  # recorded by the guard; the next restore bails out again
            # Fenced when we bumped the generation; a corrupt meta field has none to fence on.
            self.guard.call_allowed(self.backend.delete, address, generation)
        self.events.restore(RestoreResult.BAILOUT, kernel_id, key=field, cause=cause)
        return _unclaimed(RestoreResult.BAILOUT, address, cause=cause)  # the claim went with the state
