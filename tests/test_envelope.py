"""Signed envelopes and session manifests: layout, the signed input as documented, tampering, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest
import zstandard

from solara_persisted.address import session_address
from solara_persisted.envelope import (
    COMPRESS_ABOVE,
    OVERHEAD,
    ZSTD,
    Codec,
    KeyRing,
    Opened,
    envelope_tag,
    open_envelope,
    seal,
)
from solara_persisted.errors import ConfigError, MalformedEnvelopeError, TamperedError

OLD = "old-secret-0123456789abcdef"
NEW = "new-secret-fedcba9876543210"
KERNEL = "3308f3b8-1f7c-4c59-a7a3-0d4b1c0e9a11"
ADDRESS = session_address("the-session-cookie", KERNEL)
FIELD = "myapp.filters"


def lp(part: bytes) -> bytes:
    return struct.pack(">I", len(part)) + part


def doc_key_id(secret: str) -> bytes:
    """The key id exactly as docs/envelope.md defines it."""
    return hashlib.sha256(lp(b"solara-persisted/key-id/v1") + lp(secret.encode())).digest()[:4]


def doc_address(cookie: str, kernel_id: str) -> str:
    """The session address exactly as docs/envelope.md defines it."""

    def part(*pieces: bytes) -> str:
        digest = hashlib.sha256(b"".join(lp(piece) for piece in pieces)).digest()
        return base64.urlsafe_b64encode(digest).decode()[:10]

    session = part(b"solara-persisted/address/session/v1", cookie.encode())
    kernel = part(b"solara-persisted/address/kernel/v1", cookie.encode(), kernel_id.encode())
    return "{" + session + "}" + kernel


def doc_tag(secret: str, *, address: str, field: str, codec: int, varint: bytes, payload: bytes) -> bytes:
    """The tag exactly as docs/envelope.md defines it, computed with the standard hmac module."""
    signed = b"".join(
        [
            lp(b"solara-persisted/envelope/v2"),
            lp(doc_key_id(secret)),
            lp(address.encode()),
            lp(field.encode()),
            lp(bytes([codec])),
            lp(varint),
            lp(payload),
        ]
    )
    return hmac.new(secret.encode(), signed, hashlib.sha256).digest()


def sealed(
    ring: KeyRing, payload: bytes = b'{"a":1}', *, version: int = 1, codec: Codec = Codec.JSON
) -> bytes:
    return seal(ring, address=ADDRESS, field=FIELD, codec=codec, version=version, payload=payload)


def opened(ring: KeyRing, data: bytes, *, address: str = ADDRESS, field: str = FIELD) -> Opened:
    return open_envelope(ring, data, address=address, field=field)


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.from_secrets([OLD])


# -- layout and the documented signed input ------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "version", "varint"),
    [
        # Secrets shorter than, equal to and longer than the SHA-256 block, and non-ASCII.
        ("s" * 16, 1, b"\x01"),
        ("b" * 64, 0, b"\x00"),
        ("l" * 65, 127, b"\x7f"),
        ("x" * 300, 128, b"\x80\x01"),
        ("clé-secrète-ünïcode-🔑", 300, b"\xac\x02"),
        (NEW, 2**35 - 1, b"\xff\xff\xff\xff\x7f"),
    ],
)
@pytest.mark.parametrize("codec", list(Codec))
def test_envelope_is_byte_for_byte_as_documented(
    secret: str, version: int, varint: bytes, codec: Codec
) -> None:
    ring = KeyRing.from_secrets([secret])
    payload = b'"hello"'
    data = seal(ring, address=ADDRESS, field=FIELD, codec=codec, version=version, payload=payload)
    key_id = doc_key_id(secret)
    tag = doc_tag(secret, address=ADDRESS, field=FIELD, codec=codec, varint=varint, payload=payload)
    assert data == bytes([2, codec, key_id[0]]) + varint + payload + tag
    assert ring.primary_id == key_id
    assert opened(ring, data) == Opened(codec, version, payload, 0)


@pytest.mark.parametrize("size", [0, 1, 27, 50, 1000, 100_000])
def test_round_trip_returns_the_payload_untouched(ring: KeyRing, size: int) -> None:
    payload = hashlib.shake_256(b"incompressible").digest(size)  # stored as it is, whatever its size
    data = sealed(ring, payload)
    assert len(data) == size + OVERHEAD == size + 36
    assert opened(ring, data) == Opened(Codec.JSON, 1, payload, 0, compressed=False)


# -- compression -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", list(Codec))
def test_a_large_compressible_payload_is_stored_compressed_and_opens_expanded(ring: KeyRing, codec: Codec) -> None:
    payload = b'{"rows":[' + b",".join(b'{"id":%d,"name":"item-%05d"}' % (i, i) for i in range(3000)) + b"]}"
    data = sealed(ring, payload, codec=codec)
    assert data[1] == codec | ZSTD
    assert len(data) < len(payload) // 4
    assert opened(ring, data) == Opened(codec, 1, payload, 0, compressed=True)


def test_a_payload_at_the_threshold_or_that_does_not_shrink_is_stored_as_it_is(ring: KeyRing) -> None:
    at = b"a" * COMPRESS_ABOVE
    noise = hashlib.shake_256(b"noise").digest(10 * COMPRESS_ABOVE)
    for payload in (at, noise):
        data = sealed(ring, payload)
        assert data[1] == Codec.JSON and len(data) == len(payload) + OVERHEAD
    assert sealed(ring, at + b"a")[1] == Codec.JSON | ZSTD


def test_flipping_the_compression_flag_is_tampering(ring: KeyRing) -> None:
    for payload in (b'{"a":1}', b"[" + b"1," * 5000 + b"1]"):
        data = bytearray(sealed(ring, payload))
        data[1] ^= ZSTD
        with pytest.raises(TamperedError):
            opened(ring, bytes(data))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 5000), "unknown or excessive size"),
        (b"not a zstd frame at all", "does not expand"),
    ],
)
def test_a_signed_frame_that_cannot_be_expanded_safely_is_malformed(frame: bytes, message: str) -> None:
    """Written by a holder of the secret but not by this library: refused before any allocation."""
    secret = "s" * 32
    ring = KeyRing.from_secrets([secret])
    byte = Codec.JSON | ZSTD
    tag = doc_tag(secret, address=ADDRESS, field=FIELD, codec=byte, varint=b"\x01", payload=frame)
    data = bytes([2, byte, doc_key_id(secret)[0], 1]) + frame + tag
    with pytest.raises(MalformedEnvelopeError, match=message):
        opened(ring, data)


def test_small_values_stay_under_the_compact_hash_limit(ring: KeyRing) -> None:
    assert len(sealed(ring, b"x" * 27)) < 64


def test_open_never_decodes_the_payload(ring: KeyRing) -> None:
    # Not JSON, and a pickle opcode stream: open hands back bytes, the codec decides later.
    for payload in (b"\xff\xfe not json", b"cos\nsystem\n(S'true'\ntR."):
        assert opened(ring, sealed(ring, payload, codec=Codec.PICKLE)).payload == payload


def test_seal_refuses_out_of_range_versions(ring: KeyRing) -> None:
    for version in (-1, 2**35):
        with pytest.raises(ValueError, match="spec version"):
            sealed(ring, version=version)


def test_seal_accepts_a_plain_int_codec(ring: KeyRing) -> None:
    assert opened(ring, sealed(ring, codec=1)).codec is Codec.PICKLE  # type: ignore[arg-type]


# -- tampering, replay and framing ---------------------------------------------------------


def test_flipping_any_bit_of_any_byte_is_refused(ring: KeyRing) -> None:
    data = sealed(ring, b'{"value":[1,2,3]}', version=200)
    for index in range(len(data)):
        for bit in range(8):
            altered = bytearray(data)
            altered[index] ^= 1 << bit
            with pytest.raises((TamperedError, MalformedEnvelopeError)):
                opened(ring, bytes(altered))


def test_flipping_codec_or_version_to_another_valid_value_is_tampering(ring: KeyRing) -> None:
    data = bytearray(sealed(ring, version=1, codec=Codec.JSON))
    as_pickle = bytes(data[:1]) + bytes([Codec.PICKLE]) + bytes(data[2:])
    as_v2 = bytes(data[:3]) + b"\x02" + bytes(data[4:])
    for altered in (as_pickle, as_v2):
        with pytest.raises(TamperedError):
            opened(ring, altered)


def test_the_address_is_a_digest_of_cookie_and_kernel_id() -> None:
    assert doc_address("the-session-cookie", KERNEL) == ADDRESS
    assert session_address("another-cookie", KERNEL) != ADDRESS
    assert session_address("the-session-cookie", KERNEL[:-1] + "2") != ADDRESS
    # length prefixes: moving bytes between cookie and kernel id gives another address
    assert session_address("ab", "c") != session_address("a", "bc")
    # one hash tag per browser session: all its kernels share a Redis Cluster slot, sessions do not
    assert session_address("the-session-cookie", "another-kernel")[:12] == ADDRESS[:12]
    assert session_address("another-cookie", KERNEL)[:12] != ADDRESS[:12]


def test_replay_into_another_session_or_field_is_refused(ring: KeyRing) -> None:
    data = sealed(ring)
    with pytest.raises(TamperedError, match="another session or key"):
        opened(ring, data, address=session_address("another-cookie", KERNEL))
    with pytest.raises(TamperedError):
        opened(ring, data, field="myapp.other")


def test_moving_bytes_between_address_and_field_is_refused(ring: KeyRing) -> None:
    # Without length prefixes "ab" + "c" and "a" + "bc" would sign the same bytes.
    data = seal(ring, address="ab", field="c", codec=Codec.JSON, version=1, payload=b"1")
    with pytest.raises(TamperedError):
        open_envelope(ring, data, address="a", field="bc")


def test_a_foreign_key_is_refused(ring: KeyRing) -> None:
    data = sealed(KeyRing.from_secrets([NEW]))
    with pytest.raises(TamperedError, match="SOLARA_STATE_SECRET_KEYS"):
        opened(ring, data)


def test_every_truncation_is_refused(ring: KeyRing) -> None:
    data = sealed(ring, b"[1,2,3]")
    for length in range(len(data)):
        expected = MalformedEnvelopeError if length < OVERHEAD else TamperedError
        with pytest.raises(expected):
            opened(ring, data[:length])


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"\x01\x00", "unknown format 1"),
        (b"\x03\x00", "unknown format 3"),
        (b"\x00\x00", "unknown format 0"),
        (b"\x02\x02", "unknown codec 2"),
        (b"\x02\xff", "unknown codec 255"),
    ],
)
def test_unknown_format_or_codec_is_malformed(ring: KeyRing, header: bytes, message: str) -> None:
    data = header + sealed(ring)[2:]
    with pytest.raises(MalformedEnvelopeError, match=message):
        opened(ring, data)


@pytest.mark.parametrize(
    ("varint", "message"),
    [
        (b"\x80\x00", "non-minimal"),
        (b"\xff\x80\x00", "non-minimal"),
        (b"\x80\x80\x80\x80\x80\x01", "overlong"),
        (b"\xff\xff\xff\xff\xff", "overlong"),
    ],
)
def test_bad_varints_are_malformed(ring: KeyRing, varint: bytes, message: str) -> None:
    data = bytes([2, 0, ring.primary_id[0]]) + varint + b"x" * 40
    with pytest.raises(MalformedEnvelopeError, match=message):
        opened(ring, data)


def test_a_varint_running_into_the_tag_is_malformed(ring: KeyRing) -> None:
    data = bytes([2, 0, ring.primary_id[0]]) + b"\x80" + b"\x81" * 32
    with pytest.raises(MalformedEnvelopeError, match="unterminated"):
        opened(ring, data)


# -- key ring and rotation -----------------------------------------------------------------


def test_rotation_verifies_old_envelopes_and_reports_the_key_index() -> None:
    old_data = sealed(KeyRing.from_secrets([OLD]), b"42")
    rotated = KeyRing.from_secrets([NEW, OLD])
    result = opened(rotated, old_data)
    assert (result.payload, result.key_index) == (b"42", 1)
    resigned = sealed(rotated, result.payload)
    assert opened(rotated, resigned).key_index == 0
    assert resigned[2] == doc_key_id(NEW)[0]
    with pytest.raises(TamperedError):
        opened(KeyRing.from_secrets([NEW]), old_data)  # once the old key is dropped


def colliding_secrets() -> tuple[str, str]:
    """Two secrets whose key ids share the first byte (the hint)."""
    seen: dict[int, str] = {}
    for n in range(10_000):
        secret = f"collision-search-secret-{n}"
        hint = doc_key_id(secret)[0]
        if hint in seen:
            return seen[hint], secret
        seen[hint] = secret
    raise AssertionError("no collision found")


def test_keys_sharing_a_hint_byte_both_verify() -> None:
    first, second = colliding_secrets()
    ring = KeyRing.from_secrets([first, second])
    data = sealed(KeyRing.from_secrets([second]))
    assert opened(ring, data).key_index == 1
    assert opened(ring, sealed(ring)).key_index == 0


def test_from_secrets_refuses_an_empty_ring() -> None:
    for secrets in ([], [""]):
        with pytest.raises(ConfigError, match="SOLARA_STATE_SECRET_KEYS"):
            KeyRing.from_secrets(secrets)


def test_ring_ids_owns_and_repeated_secrets() -> None:
    ring = KeyRing.from_secrets([NEW, OLD, NEW])
    assert ring.key_ids == (doc_key_id(NEW), doc_key_id(OLD))
    assert ring.owns(doc_key_id(OLD))
    assert not ring.owns(doc_key_id("some-other-secret-entirely"))


def test_secrets_never_show_in_repr() -> None:
    text = repr(KeyRing.from_secrets([NEW, OLD]))
    assert NEW not in text and OLD not in text
    assert NEW.encode() not in text.encode()


def test_fingerprint_depends_on_keys_and_order_only() -> None:
    a = KeyRing.from_secrets([NEW, OLD])
    assert a.fingerprint() == KeyRing.from_secrets([NEW, OLD]).fingerprint()
    assert a == KeyRing.from_secrets([NEW, OLD])
    assert a.fingerprint() != KeyRing.from_secrets([OLD, NEW]).fingerprint()
    assert a.fingerprint() != KeyRing.from_secrets([NEW]).fingerprint()
    expected = hashlib.sha256(
        lp(b"solara-persisted/ring/v1") + lp(doc_key_id(NEW)) + lp(doc_key_id(OLD))
    ).hexdigest()[:16]
    assert a.fingerprint() == expected


# -- session manifests ---------------------------------------------------------------------

TAG = b"\x01\x02\x03\x04"


def doc_manifest(secret: str, *, address: str, counter: int, fields: dict[str, bytes]) -> bytes:
    """The manifest MAC exactly as docs/envelope.md defines it."""
    names = sorted(name.encode() for name in fields)
    signed = [
        lp(b"solara-persisted/manifest/v1"),
        lp(doc_key_id(secret)),
        lp(address.encode()),
        lp(TAG),
        struct.pack(">II", counter, len(fields)),
        *(struct.pack(">I", len(name)) for name in names),
        *(name + fields[name.decode()] for name in names),
    ]
    return hmac.new(secret.encode(), b"".join(signed), hashlib.sha256).digest()[:16]


def test_the_manifest_is_as_documented_and_verifies() -> None:
    ring = KeyRing.from_secrets([NEW, OLD])
    fields = {"b": envelope_tag(sealed(ring, b"2")), "a": envelope_tag(sealed(ring, b"1"))}
    key_id, mac = ring.sign_manifest(address=ADDRESS, tag=TAG, counter=7, fields=fields)
    assert key_id == doc_key_id(NEW)
    assert mac == doc_manifest(NEW, address=ADDRESS, counter=7, fields=fields)
    raw = {name.encode(): tag for name, tag in fields.items()}
    assert ring.verify_manifest(key_id=key_id, mac=mac, address=ADDRESS, tag=TAG, counter=7, envelopes=raw)


def test_any_change_to_the_signed_set_fails_the_manifest() -> None:
    ring = KeyRing.from_secrets([NEW])
    fields = {b"a": b"A" * 32, b"b": b"B" * 32}
    key_id, mac = ring.sign_manifest(
        address=ADDRESS, tag=TAG, counter=3, fields={k.decode(): v for k, v in fields.items()}
    )

    def verifies(**changes: object) -> bool:
        args: dict = {"key_id": key_id, "mac": mac, "address": ADDRESS, "tag": TAG, "counter": 3, "envelopes": fields}
        args.update(changes)
        return ring.verify_manifest(**args)

    assert verifies()
    assert not verifies(envelopes={b"a": b"A" * 32})  # a field removed
    assert not verifies(envelopes={**fields, b"c": b"C" * 32})  # a field added
    assert not verifies(envelopes={b"a": b"X" * 32, b"b": b"B" * 32})  # a field rolled back or replaced
    assert verifies(envelopes={b"a": b"header" + b"A" * 32, b"b": b"B" * 32}), "only each envelope's tag is signed"
    assert not verifies(envelopes={b"a": b"A" * 31, b"b": b"B" * 32}), "a value shorter than a tag is none of ours"
    assert not verifies(counter=2)
    assert not verifies(address=session_address("another-cookie", KERNEL))
    assert not verifies(tag=b"\x00" * 4)
    assert not verifies(key_id=doc_key_id(OLD))  # a key this ring lacks never verifies


def test_a_rotated_ring_verifies_a_manifest_signed_by_the_old_key() -> None:
    fields = {"a": b"A" * 32}
    key_id, mac = KeyRing.from_secrets([OLD]).sign_manifest(address=ADDRESS, tag=TAG, counter=1, fields=fields)
    raw = {b"a": b"A" * 32}
    args = {"key_id": key_id, "mac": mac, "address": ADDRESS, "tag": TAG, "counter": 1, "envelopes": raw}
    assert KeyRing.from_secrets([NEW, OLD]).verify_manifest(**args)
    assert not KeyRing.from_secrets([NEW]).verify_manifest(**args)


def test_a_manifest_signs_only_whole_envelope_tags() -> None:
    with pytest.raises(ValueError, match="32-byte envelope tags"):
        KeyRing.from_secrets([NEW]).sign_manifest(address=ADDRESS, tag=TAG, counter=1, fields={"a": b"short"})


def test_manifest_and_envelope_macs_are_domain_separated() -> None:
    ring = KeyRing.from_secrets([NEW])
    data = seal(ring, address="a", field="a", codec=Codec.JSON, version=1, payload=b"a")
    _, mac = ring.sign_manifest(address="a", tag=TAG, counter=1, fields={"a": envelope_tag(data)})
    assert mac not in data
