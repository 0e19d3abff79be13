"""Signed envelopes and session manifests: the only bytes solara-persisted ever stores.

An envelope is a 4-byte header (3 bytes plus a one-byte varint for versions below 128), the
payload (zstd-compressed above 1 KiB when that pays) and a 32-byte HMAC-SHA-256 tag: 36 bytes
of overhead, so a small value plus its envelope stays under Redis's 64-byte compact-hash limit.
The tag covers the signing key id, the session's storage address (a digest of session cookie and
kernel id), field name, codec, spec version and payload in a length-prefixed encoding, so an
envelope cannot be replayed into another session or field, nor have its codec or version
swapped. A session's manifest signs the set of its fields (each by its envelope tag) with a
write counter, so a field rolled back, removed or added alone is detected. ``open_envelope``
and ``KeyRing.verify_manifest`` run before anything is decoded.
Layout: ``docs/envelope.md``.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import itertools
import struct
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import zstandard

from .errors import ConfigError, MalformedEnvelopeError, TamperedError

FORMAT = 2
TAG_SIZE = 32
KEY_ID_SIZE = 4
#: A manifest's MAC is truncated to 128 bits: it is recomputed by the server and compared, and
#: forging it means a 2^128 search, one takeover per guess; 16 saved bytes keep a small session's
#: hash in a smaller allocation.
MANIFEST_MAC_SIZE = 16
#: Envelope size of an empty payload at a version below 128 (header of 4 bytes plus the tag).
OVERHEAD = 4 + TAG_SIZE
#: Versions are an unsigned LEB128 varint of at most this many bytes.
MAX_VARINT_BYTES = 5
MAX_VERSION = 1 << (7 * MAX_VARINT_BYTES)

ENVELOPE_DOMAIN = b"solara-persisted/envelope/v2"
MANIFEST_DOMAIN = b"solara-persisted/manifest/v1"
KEY_ID_DOMAIN = b"solara-persisted/key-id/v1"
RING_DOMAIN = b"solara-persisted/ring/v1"

_SHA256_BLOCK = 64
_u32 = struct.Struct(">I").pack
#: The manifest's write counter wraps at 32 bits (it orders writes; it is not a security bound).
COUNTER_MODULUS = 1 << 32
_SMALL_VARINTS = tuple(bytes((n,)) for n in range(0x80))


class Codec(enum.IntEnum):
    """How the payload was serialized; bound into the tag so it cannot be swapped."""

    JSON = 0
    PICKLE = 1


_CODECS: tuple[Codec, ...] = tuple(Codec)

#: The codec byte's flag for a zstd-compressed payload. It is signed with the codec, so a stored
#: envelope cannot have it flipped.
ZSTD = 0x80
#: Payloads over this many bytes are stored compressed when that saves a tenth or more. zstd at
#: level 1: 1 KiB of JSON shrinks to about a third for ~11 µs, 100 KB to an eighth for ~0.25 ms,
#: where zlib takes 2.5-9× longer for more bytes (bench/README.md, "Writes that need not happen").
COMPRESS_ABOVE = 1024
COMPRESS_LEVEL = 1
#: The most bytes a compressed payload may expand to; a verified one never comes near it.
MAX_EXPANDED = 256 << 20
#: Every codec byte an envelope may carry: each codec, plain or compressed.
_CODEC_BYTES: tuple[int, ...] = tuple(flag | codec for flag in (0, ZSTD) for codec in _CODECS)
# zstd contexts are not safe to share between threads: one of each per thread.
_zstd = threading.local()


def _lp(part: bytes) -> bytes:
    """One length-prefixed part of a canonical encoding (4-byte big-endian length first)."""
    return _u32(len(part)) + part


def _tail(codec_byte: int, varint: bytes) -> bytes:
    """The signed codec (with its compression flag) and version parts."""
    return _lp(bytes((codec_byte,))) + _lp(varint)


def _compress(payload: bytes) -> bytes | None:
    """``payload`` zstd-compressed, or None when it is too small or does not shrink by a tenth."""
    if len(payload) <= COMPRESS_ABOVE:
        return None
    compressor = getattr(_zstd, "compressor", None)
    if compressor is None:
        compressor = _zstd.compressor = zstandard.ZstdCompressor(level=COMPRESS_LEVEL)
    packed: bytes = compressor.compress(payload)
    return packed if len(packed) * 10 <= len(payload) * 9 else None


def _expand(packed: bytes, field: str) -> bytes:
    """A verified compressed payload, expanded; a frame that does not say its size, or says too
    much, is refused before anything is allocated."""
    decompressor = getattr(_zstd, "decompressor", None)
    if decompressor is None:
        decompressor = _zstd.decompressor = zstandard.ZstdDecompressor()
    try:
        size = zstandard.frame_content_size(packed)
        if not 0 <= size <= MAX_EXPANDED:
            raise _malformed(field, f"has a compressed payload of unknown or excessive size ({size})")
        payload: bytes = decompressor.decompress(packed)
    except zstandard.ZstdError as error:
        raise _malformed(field, f"has a compressed payload that does not expand: {error}") from None
    return payload


# Precomputed per codec byte: the signed tail of every one-byte version, the header of every key hint.
_SMALL_TAILS = {byte: tuple(_tail(byte, varint) for varint in _SMALL_VARINTS) for byte in _CODEC_BYTES}
_HEADERS = {byte: tuple(bytes((FORMAT, byte, hint)) for hint in range(256)) for byte in _CODEC_BYTES}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key_id(secret: bytes) -> bytes:
    return hashlib.sha256(_lp(KEY_ID_DOMAIN) + _lp(secret)).digest()[:KEY_ID_SIZE]


def _keyed(secret: bytes, prefix: bytes) -> tuple[Any, Any]:
    """HMAC-SHA-256 (RFC 2104) states keyed once, with ``prefix`` already absorbed.

    Returns the inner and outer SHA-256 states; a tag over ``prefix + message`` is
    ``outer.copy().update(inner.copy().update(message).digest()).digest()``. Copying two
    hashlib states is C-only work, while ``hmac.HMAC.copy``/``digest`` add Python-level
    overhead worth about a third of the time of a small envelope. ``tests/test_envelope.py``
    checks the result against ``hmac.new`` for keys shorter than, equal to and longer than a block.
    """
    if len(secret) > _SHA256_BLOCK:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in secret))
    inner.update(prefix)
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in secret))
    return inner, outer


def _mac(keyed: tuple[Any, Any], message: bytes) -> bytes:
    inner_state, outer_state = keyed
    inner = inner_state.copy()
    inner.update(message)
    outer = outer_state.copy()
    outer.update(inner.digest())
    return outer.digest()


@attrs.frozen
class KeyRing:
    """``SOLARA_STATE_SECRET_KEYS`` ready for use: sign with the first key, verify with any.

    Every key's HMAC state is prepared once here, so signing and verifying only copy it.
    Secrets never appear in ``repr`` and never leave this object; only their 4-byte key ids
    are stored with the data.
    """

    key_ids: tuple[bytes, ...]
    _secrets: tuple[bytes, ...] = attrs.field(repr=False)
    _signers: tuple[tuple[Any, Any], ...] = attrs.field(repr=False, eq=False)
    _manifests: tuple[tuple[Any, Any], ...] = attrs.field(repr=False, eq=False)
    # The keys to try per key-hint byte: those whose id starts with it (almost always exactly one).
    _by_hint: Mapping[int, tuple[int, ...]] = attrs.field(repr=False, eq=False)

    @classmethod
    def from_secrets(cls, secrets: Sequence[str]) -> KeyRing:
        """Build the ring; a repeated secret counts once (first place wins), an empty ring is refused."""
        unique = tuple(dict.fromkeys(secret.encode("utf-8") for secret in secrets))
        if not unique or not all(unique):
            raise ConfigError(
                "SOLARA_STATE_SECRET_KEYS",
                "no usable secret key (the ring is empty or holds an empty key)",
                'generate one with python -c "import secrets; print(secrets.token_urlsafe(32))" and give '
                "every instance the same value",
            )
        key_ids = tuple(_key_id(secret) for secret in unique)
        signers = tuple(
            _keyed(secret, _lp(ENVELOPE_DOMAIN) + _lp(key_id))
            for secret, key_id in zip(unique, key_ids, strict=True)
        )
        manifests = tuple(
            _keyed(secret, _lp(MANIFEST_DOMAIN) + _lp(key_id))
            for secret, key_id in zip(unique, key_ids, strict=True)
        )
        by_hint: dict[int, tuple[int, ...]] = {}
        for index, key_id in enumerate(key_ids):
            by_hint[key_id[0]] = (*by_hint.get(key_id[0], ()), index)
        return cls(key_ids, unique, signers, manifests, by_hint)

    @property
    def primary_id(self) -> bytes:
        return self.key_ids[0]

    def owns(self, key_id: bytes) -> bool:
        """Whether ``key_id`` names a secret of this ring (a foreign id means mismatched fleet secrets)."""
        return key_id in self.key_ids

    def sign_manifest(
        self, *, address: str, tag: bytes, counter: int, fields: Mapping[str, bytes]
    ) -> tuple[bytes, bytes]:
        """The primary key's id and the manifest MAC over ``fields`` (name -> 32-byte envelope tag)."""
        items = sorted((name.encode("utf-8"), field_tag) for name, field_tag in fields.items())
        mac = self._manifest(0, address, tag, counter, items)
        if mac is None:
            raise ValueError(f"a manifest signs {TAG_SIZE}-byte envelope tags; use envelope_tag(envelope)")
        return self.key_ids[0], mac

    def verify_manifest(
        self, *, key_id: bytes, mac: bytes, address: str, tag: bytes, counter: int, envelopes: Mapping[bytes, bytes]
    ) -> bool:
        """Whether the key ``key_id`` names signed exactly these fields (raw name -> stored envelope)."""
        try:
            index = self.key_ids.index(key_id)
        except ValueError:
            return False
        expected = self._manifest(
            index, address, tag, counter, sorted((name, envelope[-TAG_SIZE:]) for name, envelope in envelopes.items())
        )
        return expected is not None and hmac.compare_digest(expected, mac)

    def _manifest(
        self, index: int, address: str, tag: bytes, counter: int, items: list[tuple[bytes, bytes]]
    ) -> bytes | None:
        """The MAC over ``items`` (name, envelope tag), sorted by name; None if a tag is not 32 bytes.

        Every name's length comes first, in one block, then names and tags back to back: the
        lengths and the fixed tag size make the encoding unambiguous, and it is built in C.
        Layout: docs/envelope.md.
        """
        count = len(items)
        lengths = [len(name) for name, _ in items]
        body = b"".join(itertools.chain.from_iterable(items))
        if len(body) != sum(lengths) + TAG_SIZE * count:
            return None  # a value shorter than a tag: no envelope this library wrote
        head = b"".join(
            (
                _lp(address.encode("utf-8")),
                _lp(tag),
                _u32(counter % COUNTER_MODULUS),
                _u32(count),
                struct.pack(f">{count}I", *lengths),
            )
        )
        return _mac(self._manifests[index], head + body)[:MANIFEST_MAC_SIZE]

    def fingerprint(self) -> str:
        """A short hex digest of the ordered key ids, equal on every instance holding the same ring."""
        return hashlib.sha256(_lp(RING_DOMAIN) + b"".join(map(_lp, self.key_ids))).hexdigest()[:16]


@attrs.frozen
class Opened:
    """A verified envelope; ``key_index`` > 0 means a non-primary key signed it (re-sign on next write)."""

    codec: Codec
    version: int
    payload: bytes  # expanded, when it was stored compressed
    key_index: int
    compressed: bool = False


def plain_size(payload: bytes, version: int) -> int:
    """The bytes of ``payload``'s envelope stored uncompressed: what size caps count."""
    return len(payload) + OVERHEAD + (0 if version < 0x80 else len(_varint(version)) - 1)


def envelope_tag(envelope: bytes) -> bytes:
    """The part of an envelope a manifest signs for it: its own tag (which covers every other byte)."""
    return envelope[-TAG_SIZE:]


def shared_binding(field: str, stamp: int, tag: bytes) -> str:
    """The field name a shared value's envelope is signed for: its key, change stamp and schema tag.

    A browser session's shared hash has no manifest (many kernels write it), so what decides a
    restore (which change is newest, which schema wrote it) is bound into each value's own tag:
    altering the stored stamp or tag is a verification failure, not a different winner.
    """
    return f"{field}\x00{stamp}\x00{tag.hex()}"


def seal(ring: KeyRing, *, address: str, field: str, codec: Codec, version: int, payload: bytes) -> bytes:
    """Sign ``payload`` with the ring's primary key, bound to this session address, field, codec and
    version; a payload over ``COMPRESS_ABOVE`` bytes is stored compressed when that pays."""
    byte = int(Codec(codec))
    packed = _compress(payload)
    if packed is not None:
        payload, byte = packed, byte | ZSTD
    if 0 <= version < 0x80:
        varint = _SMALL_VARINTS[version]
        tail = _SMALL_TAILS[byte][version]
    elif 0 <= version < MAX_VERSION:
        varint = _varint(version)
        tail = _tail(byte, varint)
    else:
        raise ValueError(f"spec version {version} is outside 0..{MAX_VERSION - 1}; declare a small version")
    tag = _mac(ring._signers[0], b"".join((_bound(address, field), tail, _u32(len(payload)), payload)))
    return b"".join((_HEADERS[byte][ring.key_ids[0][0]], varint, payload, tag))


def open_envelope(ring: KeyRing, data: bytes, *, address: str, field: str) -> Opened:
    """Check framing, then the tag against the ring's keys; nothing is decoded here."""
    size = len(data)
    if size < OVERHEAD:
        raise _malformed(field, f"is truncated ({size} bytes, an envelope has {OVERHEAD} or more)")
    if data[0] != FORMAT:
        raise _malformed(field, f"has unknown format {data[0]} (this version reads {FORMAT})")
    byte = data[1]
    tails = _SMALL_TAILS.get(byte)
    if tails is None:
        raise _malformed(field, f"names unknown codec {byte}")
    version = data[3]
    if version < 0x80:
        end = 4
        tail = tails[version]
    else:
        version, end = _read_varint(data, field)
        tail = _tail(byte, data[3:end])
    tag_at = size - TAG_SIZE
    payload = data[end:tag_at]
    signed = b"".join((_bound(address, field), tail, _u32(len(payload)), payload))
    tag = data[tag_at:]
    # Any key of the ring may have signed it, but only one whose id starts with the hint byte: the
    # full key id is signed, so an honest hint always matches, and an altered one is refused too.
    signers = ring._signers
    for index in ring._by_hint.get(data[2], ()):
        if hmac.compare_digest(_mac(signers[index], signed), tag):
            if byte & ZSTD:  # expanded only once verified: unsigned bytes are never decompressed
                return Opened(_CODECS[byte & ~ZSTD], version, _expand(payload, field), index, compressed=True)
            return Opened(_CODECS[byte], version, payload, index)
    raise TamperedError(
        problem=f"stored value of key {field!r} matches none of the {len(signers)} key(s) in "
        "SOLARA_STATE_SECRET_KEYS: it was altered, copied from another session or key, or signed by an "
        "instance with different secrets",
        fix="give every instance the same SOLARA_STATE_SECRET_KEYS",
    )


@functools.lru_cache(maxsize=4096)
def _bound(address: str, field: str) -> bytes:
    """The signed address and field name; cached because a session signs the same pairs over and over."""
    return _lp(address.encode("utf-8")) + _lp(field.encode("utf-8"))


def _read_varint(data: bytes, field: str) -> tuple[int, int]:
    """Decode a multi-byte version varint; overlong, non-minimal and unterminated forms are refused."""
    limit = min(3 + MAX_VARINT_BYTES, len(data) - TAG_SIZE)
    value = 0
    for position in range(3, limit):
        byte = data[position]
        value |= (byte & 0x7F) << (7 * (position - 3))
        if byte < 0x80:
            if byte == 0:
                raise _malformed(field, "has a non-minimal version varint")
            return value, position + 1
    raise _malformed(field, "has an unterminated or overlong version varint")


def _malformed(field: str, problem: str) -> MalformedEnvelopeError:
    return MalformedEnvelopeError(
        problem=f"stored value of key {field!r} {problem}",
        fix="if every instance runs the same solara-persisted, something else writes under "
        "SOLARA_STATE_PREFIX; give the state its own prefix or database (a newer format means this "
        "instance needs upgrading)",
    )
