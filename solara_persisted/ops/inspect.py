"""``solara-persisted inspect``: what the store holds under the prefix, and whether one session verifies.

Sizing a Redis from a model is a guess until it meets real sessions: which keys are big, which
sessions are outliers, whether every key still expires, which versions of each key are still
stored. A census answers that from the live store without disturbing it: SCAN in steps of
``SCAN_COUNT`` (never KEYS), a read-only script per key that returns the meta field and each
value's length and first bytes (never a whole value), ``MEMORY USAGE`` where the user may run
it, all bounded by ``--limit`` keys and the timeout. Sessions appear by their address, a digest
of cookie and kernel id, never by anything a client holds; key labels are hashed as
``/resourcez`` hashes them in production, because keys may embed user identifiers.

``inspect ADDRESS`` is the other half of "why did this session not restore": it reads one
session and checks it as a restore would (the manifest, then each value's envelope, then the
app's decoding), read-only, and shows each value as its type and size unless asked for more.
"""

from __future__ import annotations

import collections
import json
import math
from collections.abc import Callable, Iterator, Sequence, Sized
from typing import Any, Literal

import attrs
from redis.exceptions import NoPermissionError, NoScriptError, ResponseError
from rich.console import Console
from rich.markup import escape

from .. import migrations
from ..address import shared_address
from ..backends.base import KEY_RINGS, META_FIELD, STAMP_SIZE, TAG_DIGEST_SIZE, tag_digest
from ..config import Settings
from ..envelope import Codec, KeyRing, Opened, open_envelope, shared_binding
from ..errors import CodecError, EnvelopeError, MigrationError, TamperedError
from ..spec import Registry
from ..stats import hash_label
from .doctor import SCRATCH, Connection
from .report import compact_table, human_duration, human_size
from .stored import HEAD_SIZE, envelope_version, key_kind, stored_meta

#: Keys asked for per SCAN call: each call is a bounded step, so Redis serves others in between.
SCAN_COUNT = 1000
#: ``--limit``: keys read at most.
LIMIT = 100_000
#: Keys read per pipelined round trip.
BATCH = 100
LARGEST = 10
#: Rows of the per-key table (``--json`` lists every key).
KEY_ROWS = 20
#: Keys without a TTL named in the report (all are counted).
NO_TTL_NAMED = 10

# Read-only: a hash's meta field, then each other field's name, length and first bytes, so that a
# census costs the headers of a session on the wire, never its values.
HEADERS = r"""
local reply = {redis.call('HGET', KEYS[1], '\0')}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.byte(field, 1) ~= 0 then
    reply[#reply + 1] = field
    reply[#reply + 1] = redis.call('HSTRLEN', KEYS[1], field)
    reply[#reply + 1] = string.sub(redis.call('HGET', KEYS[1], field), 1, ARGV[1])
  end
end
return reply
"""


# --------------------------------------------------------------------------- the census


@attrs.frozen
class Stored:
    """One hash as the census saw it: where it is, its bytes, MEMORY USAGE (None: not allowed), TTL."""

    address: str
    bytes: int  # key, field names and values: what it holds before Redis's own overhead
    memory: int | None
    keys: int  # persisted keys (the meta field aside)
    ttl: int  # ms; -1: none


@attrs.define
class KeyStats:
    """One persisted key across the sessions read: how often, how big, at which versions."""

    count: int = 0
    total: int = 0
    max: int = 0
    versions: collections.Counter[int] = attrs.Factory(collections.Counter)

    def add(self, size: int, version: int | None) -> None:
        self.count += 1
        self.total += size
        self.max = max(self.max, size)
        if version is not None:
            self.versions[version] += 1


@attrs.define
class Census:
    """What a bounded SCAN under the prefix found; ``report`` turns it into the printed document."""

    sessions: list[Stored] = attrs.Factory(list)
    shared: list[Stored] = attrs.Factory(list)
    claims: list[Stored] = attrs.Factory(list)
    other: list[Stored] = attrs.Factory(list)
    per_key: dict[str, KeyStats] = attrs.Factory(dict)
    memory_usage: bool = True  # MEMORY USAGE answered (False after the first refusal)
    read: int = 0
    truncated: bool = False

    def everything(self) -> Iterator[Stored]:
        yield from self.sessions
        yield from self.shared
        yield from self.claims
        yield from self.other


def census(
    connection: Connection, prefix: str, limit: int = LIMIT, progress: Callable[[int], None] = lambda n: None
) -> Census:
    """Read at most ``limit`` keys under ``prefix`` on every primary, ``progress`` called per batch.

    The fleet's key-ring hash and the doctor's scratch keys are not sessions and are skipped.
    Raises ``NoPermissionError`` when the user may not SCAN or run the read script.
    """
    found = Census()
    skip = (f"{prefix}{KEY_RINGS}".encode(), f"{prefix}{SCRATCH}".encode())
    for _, node in connection.nodes:
        if found.read >= limit:  # another primary's keys are left unread
            found.truncated = True
            break
        sha: str | None = None
        for keys in _scan(node, prefix, limit, skip, found):
            sha = sha or node.script_load(HEADERS)
            for at in range(0, len(keys), BATCH):
                _read(node, sha, keys[at : at + BATCH], len(prefix.encode()), found)
                progress(len(keys[at : at + BATCH]))
    return found


def _scan(
    node: Any, prefix: str, limit: int, skip: tuple[bytes, ...], found: Census
) -> Iterator[list[bytes]]:
    """SCAN ``node`` in steps of ``SCAN_COUNT``, yielding each step's new keys until ``limit`` are read."""
    seen: set[bytes] = set()  # SCAN may return a key twice
    cursor = None
    while cursor != 0 and found.read < limit:
        cursor, batch = node.scan(cursor or 0, match=f"{_glob(prefix)}*", count=SCAN_COUNT)
        keys = [key for key in batch if key not in seen and not key.startswith(skip)]
        seen.update(keys)
        room = limit - found.read
        if len(keys) > room:
            keys, found.truncated = keys[:room], True
        found.read += len(keys)
        if keys:
            yield keys
    if cursor not in (None, 0):
        found.truncated = True


def _glob(prefix: str) -> str:
    """``prefix`` as a literal in a SCAN MATCH pattern (a prefix may hold glob characters)."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in prefix)


def _read(node: Any, sha: str, keys: list[bytes], start: int, found: Census) -> None:
    """One round trip for ``keys``: the header script (sessions' shapes), PTTL and MEMORY USAGE."""
    kinds = [key_kind(key[start:]) for key in keys]
    memory = found.memory_usage
    pipe = node.pipeline(transaction=False)
    for key, kind in zip(keys, kinds, strict=True):
        if kind != "foreign":
            pipe.execute_command("EVALSHA", sha, 1, key, HEAD_SIZE)
        pipe.pttl(key)
        if memory:
            pipe.execute_command("MEMORY USAGE", key, "SAMPLES", 0)
    replies = iter(pipe.execute(raise_on_error=False))
    for key, kind in zip(keys, kinds, strict=True):
        headers = next(replies) if kind != "foreign" else None
        ttl = next(replies)
        used = next(replies) if memory else None
        if isinstance(headers, (NoPermissionError, NoScriptError)):  # WRONGTYPE is a finding, these are not
            raise headers
        if isinstance(ttl, Exception):
            raise ttl
        if isinstance(used, ResponseError):  # refused (ACL, or renamed away): sizes from lengths only
            found.memory_usage, used = False, None
        if ttl == -2:
            continue  # expired or deleted since the SCAN
        _classify(key, kind, headers, ttl, used, start, found)
    if memory and not found.memory_usage:  # refused in this batch: drop what earlier ones measured
        _forget_memory(found)


def _forget_memory(found: Census) -> None:
    """Once MEMORY USAGE is refused, no hash shows it: a distribution over some of them would mislead."""
    for group in (found.sessions, found.shared, found.claims, found.other):
        group[:] = [attrs.evolve(stored, memory=None) for stored in group]


def _classify(
    key: bytes, kind: str, headers: Any, ttl: int, used: int | None, start: int, found: Census
) -> None:
    address = key[start:].decode("utf-8", "replace")
    if kind == "foreign" or isinstance(headers, ResponseError):  # not shaped like ours, or WRONGTYPE
        found.other.append(Stored(address, len(key), used, 0, ttl))
        return
    meta, *rest = headers
    fields = [(rest[i], int(rest[i + 1]), rest[i + 2]) for i in range(0, len(rest), 3)]
    size = len(key) + (1 + len(meta) if meta is not None else 0) + sum(len(f) + n for f, n, _ in fields)
    stored = Stored(address, size, used, len(fields), ttl)
    if kind == "shared":
        found.shared.append(stored)
        _count_keys(found, fields, STAMP_SIZE + TAG_DIGEST_SIZE)
        return
    parsed = stored_meta(meta)
    if parsed is None:
        found.other.append(stored)
    elif parsed.is_claim and not fields:
        found.claims.append(stored)
    else:
        found.sessions.append(stored)
        _count_keys(found, fields, 0)


def _count_keys(found: Census, fields: list[tuple[bytes, int, bytes]], at: int) -> None:
    for field, size, head in fields:
        name = field.decode("utf-8", "replace")
        found.per_key.setdefault(name, KeyStats()).add(size, envelope_version(head[at:]))


# --------------------------------------------------------------------------- the report


def distribution(values: Sequence[float]) -> dict[str, float] | None:
    """Nearest-rank percentiles: every figure is a value that was read, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(percent: float) -> float:
        return ordered[max(math.ceil(percent / 100 * len(ordered)) - 1, 0)]

    return {
        "count": len(ordered),
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "min": ordered[0],
        "max": ordered[-1],
    }


def report(found: Census, *, prefix: str, limit: int, show_keys: bool = False) -> dict[str, Any]:
    """The census as one document: ``--json`` prints it, the tables show it."""

    def label(key: str) -> str:
        return key if show_keys else hash_label(key)

    def sizes(group: list[Stored]) -> dict[str, Any]:
        return {
            "bytes": distribution([s.bytes for s in group]),
            "memory": distribution([s.memory for s in group if s.memory is not None])
            if found.memory_usage
            else None,
        }

    everything = list(found.everything())
    forever = sorted(s.address for s in everything if s.ttl < 0)
    ranked = sorted(found.sessions, key=lambda s: (-(s.memory or 0), -s.bytes, s.address))[:LARGEST]
    keys = sorted(found.per_key.items(), key=lambda item: (-item[1].total, item[0]))
    return {
        "prefix": prefix,
        "limit": limit,
        "keys_read": len(everything),
        "truncated": found.truncated,
        "counts": {
            "sessions": len(found.sessions),
            "claims": len(found.claims),
            "shared": len(found.shared),
            "other": len(found.other),
        },
        "memory_usage": found.memory_usage,
        "sizes": {"sessions": sizes(found.sessions), "shared": sizes(found.shared)},
        "ttl": {
            "seconds": _seconds(distribution([s.ttl for s in everything if s.ttl >= 0])),
            "without_ttl": len(forever),
            "without_ttl_keys": forever[:NO_TTL_NAMED],
        },
        "largest": [
            {
                "address": s.address,
                "bytes": s.bytes,
                "memory": s.memory,
                "keys": s.keys,
                "ttl": s.ttl / 1000 if s.ttl >= 0 else None,
            }
            for s in ranked
        ],
        "labels": "shown" if show_keys else "hashed",
        "keys": [
            {
                "key": label(name),
                "count": stats.count,
                "total": stats.total,
                "mean": round(stats.total / stats.count, 1),
                "max": stats.max,
                "versions": {str(v): n for v, n in sorted(stats.versions.items())},
            }
            for name, stats in keys
        ],
    }


def _seconds(ms: dict[str, float] | None) -> dict[str, float] | None:
    if ms is None:
        return None
    return {name: value if name == "count" else value / 1000 for name, value in ms.items()}


def print_report(console: Console, document: dict[str, Any], where: str) -> None:
    """For a person: counts, distributions, the largest sessions and the keys, from ``report``'s document."""
    counts = document["counts"]
    more = " (more under the prefix: raise --limit)" if document["truncated"] else ""
    console.print(
        f"{document['keys_read']} keys under {document['prefix']!r} at {where}{more}: "
        f"{counts['sessions']} sessions, {counts['claims']} claims, {counts['shared']} shared, "
        f"{counts['other']} other",
        highlight=False,
        markup=False,
    )
    table = compact_table("sizes")
    for column in ("", "count", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="left" if not column else "right")
    for group in ("sessions", "shared"):
        for measure, title in (("bytes", "bytes"), ("memory", "MEMORY USAGE")):
            row = document["sizes"][group][measure]
            if row is not None:
                table.add_row(
                    f"{group} {title}",
                    str(row["count"]),
                    *(human_size(row[p]) for p in ("p50", "p90", "p99", "max")),
                )
    console.print(table)
    if not document["memory_usage"]:
        console.print(
            "MEMORY USAGE refused: sizes are the key, field and value lengths only", highlight=False
        )
    ttl = document["ttl"]
    if ttl["seconds"] is not None:
        s = ttl["seconds"]
        console.print(
            f"TTL of {s['count']} keys: p50 {human_duration(s['p50'])}, p90 {human_duration(s['p90'])}, "
            f"min {human_duration(s['min'])}, max {human_duration(s['max'])}",
            highlight=False,
        )
    if ttl["without_ttl"]:
        named = ", ".join(ttl["without_ttl_keys"])
        console.print(
            f"[red]{ttl['without_ttl']} key{'' if ttl['without_ttl'] == 1 else 's'} without a TTL[/] "
            f"(never expiring): {escape(named)}"
            f"{' …' if ttl['without_ttl'] > len(ttl['without_ttl_keys']) else ''}",
            highlight=False,
        )
    if document["largest"]:
        largest = compact_table("largest sessions")
        for column in ("address", "bytes", "MEMORY USAGE", "keys", "TTL"):
            largest.add_column(column, justify="left" if column == "address" else "right")
        for row in document["largest"]:
            largest.add_row(
                escape(row["address"]),
                human_size(row["bytes"]),
                human_size(row["memory"]) if row["memory"] is not None else "-",
                str(row["keys"]),
                human_duration(row["ttl"]) if row["ttl"] is not None else "none",
            )
        console.print(largest)
    if document["keys"]:
        hashed = " (labels hashed: --show-keys shows them)" if document["labels"] == "hashed" else ""
        keys = compact_table(f"bytes per persisted key{hashed}")
        for column in ("key", "count", "total", "mean", "max", "versions"):
            keys.add_column(column, justify="left" if column in ("key", "versions") else "right")
        for row in document["keys"][:KEY_ROWS]:
            versions = ", ".join(f"v{v} ×{n}" for v, n in row["versions"].items())
            keys.add_row(
                escape(row["key"]), str(row["count"]), human_size(row["total"]), human_size(row["mean"]),
                human_size(row["max"]), versions,
            )  # fmt: skip
        console.print(keys)
        if len(document["keys"]) > KEY_ROWS:
            console.print(
                f"{len(document['keys']) - KEY_ROWS} more keys: --json lists them all", highlight=False
            )


# --------------------------------------------------------------------------- one session


@attrs.frozen
class Value:
    """One stored value of the inspected session, checked as a restore checks it.

    ``status``: ``ok`` (verified and decoded), ``verified`` (verified, shown undecoded: no app,
    an undeclared key, pickle while ``SOLARA_STATE_ALLOW_PICKLE`` is off, or a newer version than
    the app declares), ``fail`` (the envelope or the decoding failed: a restore bails out).
    """

    key: str
    scope: Literal["kernel", "session"]
    bytes: int
    status: Literal["ok", "verified", "fail"]
    codec: str | None = None
    version: int | None = None
    payload: int | None = None
    type: str | None = None
    value: Any = None  # the decoded value's JSON form (or the payload's text): only with --show-values
    note: str | None = None
    problem: str | None = None  # a failure in full, for the verdict's last line (the note is its gist)


@attrs.frozen
class Verdict:
    """The inspected session: what it is, each value, and the first problem that fails it (None: verified)."""

    address: str
    found: str  # one line: what the session is
    values: tuple[Value, ...]
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None and all(value.status != "fail" for value in self.values)


def parse_address(text: str, prefix: str) -> str | None:
    """The session address in ``text`` (the key itself, with or without the prefix), or None."""
    address = text.removeprefix(prefix) if prefix and text.startswith(prefix) else text
    return address if key_kind(address.encode()) != "foreign" else None


def verify(
    address: str,
    kernel: dict[bytes, bytes] | None,
    shared: dict[bytes, bytes],
    *,
    ttl: int,
    ring: KeyRing,
    registry: Registry | None,
    settings: Settings,
    show_values: bool,
) -> Verdict:
    """Check a session as a restore would: its manifest, then every value's envelope and decoding.

    ``kernel`` is None for a browser session's shared hash (``{S}`` alone), which has no manifest:
    each shared value is bound to its key, change stamp and schema tag instead. Every value is
    checked even when the manifest fails, so the report shows which one is off.
    """
    tag = tag_digest(settings.schema_tag or "default")
    context = _Context(ring, registry, settings, show_values)
    at = shared_address(address)
    values = [
        context.shared(at, f, data, tag) for f, data in sorted(shared.items()) if f != META_FIELD.encode()
    ]
    when = f"TTL {human_duration(ttl / 1000)}" if ttl >= 0 else "no TTL (it never expires)"
    if kernel is None:
        return Verdict(
            address,
            f"a browser session's shared hash: {_count(values, 'value')}, {when}",
            tuple(values),
            None,
        )
    kernel = dict(kernel)
    meta_field = kernel.pop(META_FIELD.encode(), None)
    also = f"; {_count(values, 'shared value')} at {at}" if values else ""
    meta = stored_meta(meta_field)
    if meta is None:
        problem = "the hash has no meta field of ours: it is not a session solara-persisted wrote"
        return Verdict(address, f"{_count(kernel, 'field')}, {when}{also}", tuple(values), problem)
    if meta.is_claim and not kernel:
        found = f"a claim, nothing written yet (generation {meta.generation}), {when}{also}"
        return Verdict(address, found, tuple(values), None)
    found = f"{_count(kernel, 'value')}, generation {meta.generation}, write {meta.counter}, {when}"
    if meta.tag != tag:
        found += ", under another SOLARA_STATE_SCHEMA_TAG (a restore here starts fresh)"
    if not ring.owns(meta.key_id):
        problem = (
            f"signed with key id {meta.key_id.hex()}, which SOLARA_STATE_SECRET_KEYS lacks: run with the "
            "fleet's keys"
        )
        return Verdict(address, found + also, tuple(values), problem)
    signer = ring.key_ids.index(meta.key_id)
    found += ", signed by the primary key" if signer == 0 else f", signed by key {signer + 1} of the ring"
    own = [context.kernel(address, field, data) for field, data in sorted(kernel.items())]
    verified = ring.verify_manifest(
        key_id=meta.key_id,
        mac=meta.mac,
        address=address,
        tag=meta.tag,
        counter=meta.counter,
        envelopes=kernel,
    )
    if not verified:
        problem = "the manifest does not sign the stored fields: a field was rolled back, removed or added"
        return Verdict(address, found + also, (*own, *values), problem)
    return Verdict(address, f"{found}, manifest verified{also}", (*own, *values), None)


def _count(items: Sized, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


@attrs.frozen
class _Context:
    """What checking one value needs: the ring, the app's declarations, the settings, whether to show it."""

    ring: KeyRing
    registry: Registry | None
    settings: Settings
    show_values: bool

    def kernel(self, address: str, raw: bytes, data: bytes) -> Value:
        field = raw.decode("utf-8", "replace")
        return self._check(field, "kernel", data, address, field)

    def shared(self, at: str, raw: bytes, data: bytes, tag: bytes) -> Value:
        field = raw.decode("utf-8", "replace")
        try:
            stamp = int(data[:STAMP_SIZE])
        except ValueError:
            problem = f"shared value of key {field!r} does not start with its change stamp"
            return Value(field, "session", len(data), "fail", note="no change stamp", problem=problem)
        stored_tag = data[STAMP_SIZE : STAMP_SIZE + TAG_DIGEST_SIZE]
        value = self._check(
            field,
            "session",
            data[STAMP_SIZE + TAG_DIGEST_SIZE :],
            at,
            shared_binding(field, stamp, stored_tag),
        )
        value = attrs.evolve(value, bytes=len(data))
        if stored_tag != tag and value.status != "fail":
            return attrs.evolve(
                value, status="verified", value=None, type=None, note="another schema tag: not restored here"
            )
        return value

    def _check(
        self, field: str, scope: Literal["kernel", "session"], data: bytes, address: str, bound: str
    ) -> Value:
        try:
            opened = open_envelope(self.ring, data, address=address, field=bound)
        except EnvelopeError as error:
            gist = "HMAC matches no key" if isinstance(error, TamperedError) else "malformed envelope"
            return Value(field, scope, len(data), "fail", note=gist, problem=error.problem)
        base = Value(
            field,
            scope,
            len(data),
            "verified",
            Codec(opened.codec).name.lower() + ("+zstd" if opened.compressed else ""),
            opened.version,
            len(opened.payload),
        )
        return self._decode(base, field, opened)

    def _decode(self, base: Value, field: str, opened: Opened) -> Value:
        spec = self.registry.resolve(field) if self.registry is not None else None
        if spec is None:
            note = (
                "no app loaded: shown undecoded"
                if self.registry is None
                else "undeclared by the app: shown undecoded"
            )
            return attrs.evolve(base, note=note, value=self._raw(opened))
        if opened.codec != spec.codec_id:
            return attrs.evolve(
                base,
                status="fail",
                note=f"codec {opened.codec.name}, declared {spec.codec_id.name}",
                problem=f"key {field!r} is stored with codec {opened.codec.name} but declared {spec.codec_id.name}",
            )
        if spec.codec_name == "pickle" and not self.settings.allow_pickle:
            return attrs.evolve(base, note="pickle: not unpickled while SOLARA_STATE_ALLOW_PICKLE is off")
        try:
            if opened.version == spec.version:
                decoded = spec.type_codec.loads(opened.payload)
            else:
                decoded = migrations.convert(spec, field, opened.version, opened.payload)
        except MigrationError as error:
            if opened.version > spec.version:
                return attrs.evolve(
                    base, note=f"newer than the declared v{spec.version} and no reversible migration reads it"
                )
            return attrs.evolve(
                base, status="fail", note=f"migration from v{opened.version} fails", problem=str(error)
            )
        except CodecError as error:
            return attrs.evolve(base, status="fail", note="does not decode as declared", problem=str(error))
        note = (
            f"migrated from v{opened.version} to v{spec.version}" if opened.version != spec.version else None
        )
        shown = _jsonable(spec.type_codec.unstructure(decoded)) if self.show_values else None
        return attrs.evolve(base, status="ok", type=_type_name(decoded), value=shown, note=note)

    def _raw(self, opened: Opened) -> Any:
        """The payload itself, for ``--show-values`` without a declaration: JSON's text, never pickle's bytes."""
        if not self.show_values or opened.codec != Codec.JSON:
            return None
        return opened.payload.decode("utf-8", "replace")


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _jsonable(value: Any) -> Any:
    """What ``--json`` can print: the unstructured form, anything else as its repr."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def verdict_document(verdict: Verdict) -> dict[str, Any]:
    return {
        "address": verdict.address,
        "ok": verdict.ok,
        "found": verdict.found,
        "problem": first_problem(verdict),
        "values": [attrs.asdict(value) for value in verdict.values],
    }


def print_verdict(console: Console, verdict: Verdict, show_values: bool) -> None:
    """The session in one line, a row per value, then the verdict (the first problem, in one line)."""
    console.print(f"session {verdict.address}: {verdict.found}", highlight=False, markup=False)
    if verdict.values:
        table = compact_table(None)
        for column in (
            "key",
            "scope",
            "codec",
            "version",
            "bytes",
            "status",
            "value" if show_values else "type",
        ):
            table.add_column(
                column, justify="right" if column in ("version", "bytes") else "left", overflow="fold"
            )
        table.add_column("note", overflow="fold")
        for value in verdict.values:
            style = {"ok": "green", "verified": "yellow", "fail": "red"}[value.status]
            table.add_row(
                escape(value.key), value.scope, value.codec or "-",
                f"v{value.version}" if value.version is not None else "-", human_size(value.bytes),
                f"[{style}]{value.status}[/]", escape(_shown(value, show_values)), escape(value.note or ""),
            )  # fmt: skip
        console.print(table)
    problem = first_problem(verdict)
    if problem is None:
        console.print("[green]verified[/]", highlight=False)
    else:
        console.print(f"[red]verification failed[/]: {escape(problem)}", highlight=False)


def _shown(value: Value, show_values: bool) -> str:
    """Redacted by default: the type the value decodes to; its JSON form only with ``--show-values``."""
    if not show_values:
        return value.type or "-"
    if value.type is None and value.value is None:
        return "-"
    return (
        value.value
        if isinstance(value.value, str) and value.type is None
        else json.dumps(value.value, ensure_ascii=False)
    )


def first_problem(verdict: Verdict) -> str | None:
    """The one line that says why the session does not verify (None when it does)."""
    if verdict.problem is not None:
        return verdict.problem
    failed = next((value for value in verdict.values if value.status == "fail"), None)
    if failed is None:
        return None
    problem = failed.problem or failed.note or "failed"
    return problem if repr(failed.key) in problem else f"key {failed.key!r}: {problem}"
