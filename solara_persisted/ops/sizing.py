"""``solara-persisted sizing``: how much Redis an app's sessions take, before a fleet runs it.

A session's cost is set by what the app persists: each value is an envelope (payload plus 36
bytes; a payload over 1 KiB zstd-compressed when that pays), in one hash per kernel with a meta field, plus one shared hash per browser session for
``scope="session"`` values. Redis keeps a small hash in the compact listpack encoding and
converts it to a hash table, half as much again or more, as soon as one field or value is longer than
``hash-max-listpack-value`` (64 bytes by default): one key with a payload over 28 bytes decides the
cost of every session. So this works from the app's declarations and the payloads its committed
goldens hold (what a session really stores at that version), seals them as the writer does and
models Redis's own accounting. Nothing is written anywhere; the only Redis call is a bounded
CONFIG GET of the two listpack limits when a Redis is configured.

The model is Redis 7.0's (listpack and dict layouts, jemalloc size classes): ``MEMORY USAGE`` of a
written session matches it to the byte (tests/test_sizing.py checks it against a real
redis-server), and ``used_memory`` for N sessions adds what ``MEMORY USAGE`` leaves out (the
allocator's rounding of dict entries, the expires entry, the database's bucket arrays). Other
servers (Redis 6.2's ziplist, 7.4's field expiry, Valkey 8's hash table) differ by some percent.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from rich.console import Console
from rich.markup import escape

from ..address import ADDRESS_LENGTH, PART_LENGTH, SHARED_ADDRESS_LENGTH
from ..backends.base import GENERATION_AT, STAMP_SIZE, TAG_DIGEST_SIZE
from ..backends.redis import client_factory, redact
from ..config import Settings
from ..envelope import KeyRing, seal
from ..errors import CodecError
from ..schema.apps import display_path
from ..schema.goldens import (
    Golden,
    field_for,  # the stored key a golden is restored under
    golden_payload,  # what `solara-persisted golden` commits
    read_goldens,
)
from ..spec import PersistedSpec, Registry
from .report import compact_table, human_size

#: ``--sessions``, and the scale the table always shows next to it.
SESSIONS = 10_000
SCALE = (1_000, 10_000, 100_000, 1_000_000)
#: Redis's defaults for when a hash leaves the listpack encoding.
LISTPACK_VALUE = 64
LISTPACK_ENTRIES = 512
#: A generation is the taking connection's opening time in ms: 13 digits until 2286.
GENERATION_DIGITS = 13
META_SIZE = GENERATION_AT + GENERATION_DIGITS
#: Sizes of Redis 7.0's structures on 64-bit: an object header, a dict entry, a dict, a bucket.
ROBJ, DICT_ENTRY, DICT, BUCKET = 16, 24, 56, 8
#: A listpack's header (total bytes, element count) and end byte.
LISTPACK_OVERHEAD = 7
#: The address a throwaway seal is bound to (its length is all that matters).
_ADDRESS = "{" + "A" * PART_LENGTH + "}" + "A" * PART_LENGTH

Encoding = Literal["listpack", "hashtable"]


@attrs.frozen
class Limits:
    """The listpack limits that decide a hash's encoding, and where they were read."""

    value: int = LISTPACK_VALUE
    entries: int = LISTPACK_ENTRIES
    source: str = "Redis's defaults, no Redis configured"
    server: str | None = None  # "Redis 7.0.15", when it was asked


@attrs.frozen
class KeySize:
    """One declared key as a session stores it: payload, envelope and the value as stored.

    ``golden`` False means the payload is not a committed golden of the declared version but the
    value ``solara-persisted golden`` would commit (the schema's last example, else the default):
    an estimate of what users store.
    """

    key: str
    field: str  # the stored field name (a family's template filled in)
    scope: str
    version: int
    codec: str
    payload: int
    envelope: int
    stored: int  # the envelope, plus the change stamp and schema-tag digest of a shared value
    source: str
    golden: bool


@attrs.frozen
class HashSize:
    """One of a session's hashes as Redis holds it."""

    kind: Literal["kernel", "shared"]
    key: int  # bytes of the Redis key (prefix included)
    fields: tuple[tuple[str, int, int], ...]  # field, name bytes, value bytes; the meta field first
    encoding: Encoding
    over: tuple[str, ...]  # fields whose name or value exceeds hash-max-listpack-value
    memory_usage: int  # what MEMORY USAGE reports for it (Redis 7.0 model)
    allocated: int  # what it adds to used_memory, buckets of the database's dicts aside

    @property
    def stored(self) -> int:
        """Bytes of the key, field names and values: what the hash holds before Redis's own overhead."""
        return self.key + sum(name + value for _, name, value in self.fields)


@attrs.frozen
class Sizing:
    """The estimate for one app: its keys, a session's hashes, the memory for each number of sessions."""

    prefix: str
    goldens_dir: str
    keys: tuple[KeySize, ...]
    hashes: tuple[HashSize, ...]
    limits: Limits
    scale: tuple[int, ...]

    @property
    def stored(self) -> int:
        return sum(h.stored for h in self.hashes)

    @property
    def memory_usage(self) -> int:
        return sum(h.memory_usage for h in self.hashes)

    def used_memory(self, sessions: int) -> int:
        """What ``sessions`` sessions add to Redis's ``used_memory`` (a prefix alone in its database)."""
        keys = sessions * len(self.hashes)
        buckets = 2 * BUCKET * _power_of_two(keys) if keys else 0  # the keyspace and the expires dicts
        return sessions * sum(h.allocated for h in self.hashes) + buckets


# --------------------------------------------------------------------------- the estimate


def estimate(
    registry: Registry,
    goldens_dir: Path,
    schemas_dir: Path,
    settings: Settings,
    limits: Limits,
    sessions: int = SESSIONS,
) -> Sizing:
    """Size one session of the app (one of each declared key) and the memory at each scale.

    A family counts once, under its template filled in with ``golden``; a session that holds
    many of its keys costs that many times its value.
    """
    goldens = read_goldens(goldens_dir)
    keys = tuple(key_size(spec, goldens, schemas_dir) for spec in _specs(registry))
    kernel = [k for k in keys if k.scope != "session"]
    shared = [k for k in keys if k.scope == "session"]
    hashes = [
        hash_size("kernel", len(settings.prefix.encode()) + ADDRESS_LENGTH, _kernel_fields(kernel), limits)
    ]
    if shared:
        fields = tuple((k.field, len(k.field.encode()), k.stored) for k in shared)
        hashes.append(
            hash_size("shared", len(settings.prefix.encode()) + SHARED_ADDRESS_LENGTH, fields, limits)
        )
    scale = tuple(sorted({*SCALE, sessions}))
    return Sizing(settings.prefix, display_path(goldens_dir), keys, tuple(hashes), limits, scale)


def _specs(registry: Registry) -> list[PersistedSpec]:
    """Typed declarations, then Solara's ``persist=True`` reactives (stored the same way)."""
    return [*registry.specs(), *registry.untyped()]


def _kernel_fields(keys: Iterable[KeySize]) -> tuple[tuple[str, int, int], ...]:
    """The kernel hash's fields: the meta field (manifest and a 13-digit generation), then each value."""
    return (("\\0 (meta)", 1, META_SIZE), *((k.field, len(k.field.encode()), k.stored) for k in keys))


def key_size(spec: PersistedSpec, goldens: Mapping[str, Mapping[int, Golden]], schemas_dir: Path) -> KeySize:
    """The declared version's golden sealed as the writer seals it; without one, what ``golden`` would commit."""
    field = field_for(spec)
    golden = None if spec.untyped else goldens.get(spec.key, {}).get(spec.version)
    if golden is not None:
        payload, source = golden.payload, display_path(golden.path)
    else:
        payload, source = _fallback(spec, schemas_dir)
    ring = KeyRing.from_secrets(["sizing"])
    envelope = len(
        seal(ring, address=_ADDRESS, field=field, codec=spec.codec_id, version=spec.version, payload=payload)
    )
    stored = envelope + (STAMP_SIZE + TAG_DIGEST_SIZE if spec.scope == "session" else 0)
    return KeySize(
        spec.key,
        field,
        spec.scope,
        spec.version,
        spec.codec_name,
        len(payload),
        envelope,
        stored,
        source,
        golden is not None,
    )


def _fallback(spec: PersistedSpec, schemas_dir: Path) -> tuple[bytes, str]:
    """No golden of the declared version: the value ``solara-persisted golden`` would commit."""
    if spec.untyped or spec.codec_name != "json":
        kind = "persist=True" if spec.untyped else spec.codec_name
        return spec.type_codec.dumps(spec.default()), f"the default ({kind}, no golden)"
    try:
        payload, source = golden_payload(spec, schemas_dir)
    except CodecError:  # an example that no longer fits: `check` reports it; size the default
        payload, source = spec.type_codec.dumps(spec.default()), "the default"
    return payload, f"{source} (no golden)"


def hash_size(
    kind: Literal["kernel", "shared"], key: int, fields: tuple[tuple[str, int, int], ...], limits: Limits
) -> HashSize:
    """One hash under Redis 7.0's accounting: listpack while every name and value fits, else a dict."""
    over = tuple(label for label, name, value in fields if max(name, value) > limits.value)
    hashtable = bool(over) or len(fields) > limits.entries
    keyspace = _sds(key) + DICT_ENTRY  # the key's string and its entry in the keyspace dict
    # Allocated but not counted by MEMORY USAGE: the keyspace entry's rounding, the expires entry.
    unseen = _size_class(DICT_ENTRY) - DICT_ENTRY + _size_class(DICT_ENTRY)
    if not hashtable:
        listpack = LISTPACK_OVERHEAD + sum(_lp_entry(name) + _lp_entry(value) for _, name, value in fields)
        usage = keyspace + ROBJ + _size_class(listpack)
        return HashSize(kind, key, fields, "listpack", (), usage, usage + unseen)
    slots = _power_of_two(max(len(fields), 4))
    entries = sum(_sds(name) + _sds(value) for _, name, value in fields)
    usage = keyspace + ROBJ + DICT + BUCKET * slots + entries + DICT_ENTRY * len(fields)
    rounding = _size_class(DICT) - DICT + (_size_class(DICT_ENTRY) - DICT_ENTRY) * len(fields)
    return HashSize(kind, key, fields, "hashtable", over, usage, usage + unseen + rounding)


def _size_class(size: int) -> int:
    """jemalloc's allocation for ``size`` bytes: 8, multiples of 16 to 128, then four classes per doubling."""
    if size <= 8:
        return 8
    if size <= 128:
        return (size + 15) // 16 * 16
    spacing = 1 << ((size - 1).bit_length() - 3)
    return (size + spacing - 1) // spacing * spacing


def _sds(length: int) -> int:
    """The allocation of a Redis string of ``length`` bytes (header by length class, then a NUL)."""
    header = 1 if length < 32 else 3 if length < 256 else 5 if length < 65536 else 9
    return _size_class(header + length + 1)


def _lp_entry(length: int) -> int:
    """Bytes of one string element in a listpack: encoding, data, back-length."""
    entry = (1 if length <= 63 else 2 if length <= 4095 else 5) + length
    back = (
        1 if entry <= 127 else 2 if entry < 16383 else 3 if entry < 2097151 else 4 if entry < 268435455 else 5
    )
    return entry + back


def over_limit(key: KeySize, limits: Limits) -> bool:
    """Whether this key alone converts its hash out of the listpack encoding (its name or value too long)."""
    return max(len(key.field.encode()), key.stored) > limits.value


def _power_of_two(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


# --------------------------------------------------------------------------- Redis's limits


def read_limits(settings: Settings) -> Limits:
    """``hash-max-listpack-value`` and ``-entries`` from the configured Redis, else the defaults.

    Bounded by ``SOLARA_STATE_CONNECT_TIMEOUT``; a Redis that cannot be reached or refuses
    CONFIG GET (managed services often do) leaves the defaults, saying why.
    """
    if settings.backend != "redis" or not settings.url:
        return Limits()
    where = redact(settings.url)
    try:
        client, closers = client_factory(settings.url, settings.connect_timeout)()
    except (RedisError, RedisClusterException, OSError, ValueError) as error:
        return Limits(source=f"Redis's defaults, {where} not reached: {type(error).__name__}")
    try:
        config = _config(client)
        server = _server(client)
    except ResponseError as error:
        return Limits(source=f"Redis's defaults, CONFIG GET refused at {where}: {str(error)[:80]}")
    except (RedisError, RedisClusterException, OSError) as error:
        return Limits(source=f"Redis's defaults, {where} not reached: {type(error).__name__}")
    finally:
        client.close()
        for close in closers:
            close()
    value, entries = config
    return Limits(value, entries, f"CONFIG GET at {where}", server)


def _config(client: Any) -> tuple[int, int]:
    """The two limits; Redis 6.2 names them ziplist, 7.0 and later listpack (and accept both)."""
    values = []
    for name in ("hash-max-listpack-value", "hash-max-listpack-entries"):
        reply = client.config_get(name)
        if name not in reply:
            reply = client.config_get(name.replace("listpack", "ziplist"))
        found = next(iter(reply.values()), None)
        if isinstance(found, dict):  # a Cluster answers per node
            found = next(iter(found.values()), None)
        values.append(
            int(found) if found is not None else (LISTPACK_VALUE if "value" in name else LISTPACK_ENTRIES)
        )
    return values[0], values[1]


def _server(client: Any) -> str | None:
    """Which server answers, for the note on the model (INFO may be refused: then unknown)."""
    with contextlib.suppress(ResponseError):
        info = client.info("server")
        if isinstance(info, dict) and "redis_version" not in info:  # a Cluster answers per node
            info = next(iter(info.values()), {})
        if "valkey_version" in info:
            return f"Valkey {info['valkey_version']}"
        if "redis_version" in info:
            return f"Redis {info['redis_version']}"
    return None


# --------------------------------------------------------------------------- reports


def notes(sizing: Sizing) -> list[str]:
    """What is measured and what is estimated, for the end of the report."""
    lines = []
    missing = [k.key for k in sizing.keys if not k.golden]
    if missing:
        lines.append(
            f"estimate: {', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no golden of the declared "
            f"version in {sizing.goldens_dir}/, so the payload is the value `solara-persisted golden` would commit "
            "(the schema's last example, else the default), not what users store"
        )
    families = [k.key for k in sizing.keys if k.field != k.key]
    if families:
        lines.append(f"a family ({', '.join(families)}) counts once; each further key of it adds its value")
    server = f"; this server is {sizing.limits.server}" if sizing.limits.server else ""
    lines.append(
        "estimate: MEMORY USAGE and used_memory are modelled on Redis 7.0 with jemalloc, once a hash's dict "
        f"has finished rehashing{server}; other servers differ by some percent"
    )
    if len(sizing.hashes) > 1:
        lines.append(
            "upper bound: every session counted with a shared hash of its own; the tabs of one browser share one"
        )
    lines.append(
        "not counted: claims (a page that wrote nothing: its meta field alone) and the fleet's key-ring hash"
    )
    return lines


def to_json(sizing: Sizing) -> str:
    return json.dumps(document(sizing), indent=2, ensure_ascii=False)


def document(sizing: Sizing) -> dict[str, Any]:
    """The report as data: ``--json`` prints it, and the table shows the same numbers."""
    limits = sizing.limits
    return {
        "prefix": sizing.prefix,
        "goldens_dir": sizing.goldens_dir,
        "limits": {
            "hash-max-listpack-value": limits.value,
            "hash-max-listpack-entries": limits.entries,
            "source": limits.source,
            "server": limits.server,
        },
        "keys": [
            {**attrs.asdict(key), "over_listpack_value": over_limit(key, limits)} for key in sizing.keys
        ],
        "hashes": [
            {
                "kind": h.kind,
                "key_bytes": h.key,
                "fields": len(h.fields),
                "stored": h.stored,
                "encoding": h.encoding,
                "converted_by": list(h.over),
                "memory_usage": h.memory_usage,
            }
            for h in sizing.hashes
        ],
        "session": {"stored": sizing.stored, "memory_usage": sizing.memory_usage},
        "sessions": [
            {"sessions": n, "stored": n * sizing.stored, "used_memory": sizing.used_memory(n)}
            for n in sizing.scale
        ],
        "notes": notes(sizing),
    }


def print_report(console: Console, sizing: Sizing, sessions: int) -> None:
    """For a person: the keys, a session's hashes and their encoding, the memory at each scale, the notes."""
    limits = sizing.limits
    keys = compact_table("one session's values")
    keys.add_column("key", no_wrap=True)
    keys.add_column("scope")
    keys.add_column("v")
    for column in ("payload", "envelope", "stored"):
        keys.add_column(column, justify="right")
    keys.add_column("listpack")
    keys.add_column("from")
    for key in sizing.keys:
        fits = f"[red]over {limits.value}[/]" if over_limit(key, limits) else "fits"
        keys.add_row(
            escape(key.key), key.scope, f"v{key.version}", human_size(key.payload), human_size(key.envelope),
            human_size(key.stored), fits, "golden" if key.golden else "[yellow]estimate[/]",
        )  # fmt: skip
    console.print(keys)
    for h in sizing.hashes:
        where = f"{sizing.prefix}{{S}}K" if h.kind == "kernel" else f"{sizing.prefix}{{S}}"
        verdict = (
            "[green]listpack[/]"
            if h.encoding == "listpack"
            else f"[red]hashtable[/] (converted by {escape(', '.join(h.over)) or f'over {limits.entries} fields'})"
        )
        console.print(
            f"{h.kind} hash {escape(where)}: {len(h.fields)} field{'' if len(h.fields) == 1 else 's'}, {human_size(h.stored)} stored, {verdict}, "
            f"MEMORY USAGE {human_size(h.memory_usage)}",
            highlight=False,
        )
    console.print(
        f"listpack limits: hash-max-listpack-value {limits.value}, hash-max-listpack-entries {limits.entries} "
        f"({escape(limits.source)})",
        highlight=False,
    )
    scale = compact_table("Redis memory")
    scale.add_column("sessions", justify="right")
    scale.add_column("stored", justify="right")
    scale.add_column("used_memory (estimate)", justify="right")
    for n in sizing.scale:
        style = "bold" if n == sessions else ""
        scale.add_row(f"{n:,}", human_size(n * sizing.stored), human_size(sizing.used_memory(n)), style=style)
    console.print(scale)
    for note in notes(sizing):
        console.print(f"[dim]{escape(note)}[/]", highlight=False)
