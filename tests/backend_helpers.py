"""Building blocks of the backend contract tests (``test_backends``, ``test_redis_cluster``).

A session is addressed by ``session_address(cookie, kernel id)``; a write carries a ``Meta`` whose
manifest is signed for real with a throwaway key ring (backends never check it, the engine does).
``packed`` spells the meta field's bytes out by hand, independently of ``Meta.pack``, so a test
that compares stored bytes against it checks the documented layout and not the code under test.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping

from solara_persisted.address import session_address
from solara_persisted.backends.base import FlushRequest, Meta, SessionBudget, tag_digest
from solara_persisted.envelope import TAG_SIZE, KeyRing, envelope_tag

TTL = 60.0
RING = KeyRing.from_secrets([secrets.token_urlsafe(32)])
NO_LIMIT = SessionBudget()
#: A generation the engine could hand out (``engine.FRESH_GENERATIONS``: 2**32 and up, ten digits).
FIRST = (1 << 32) + 12345
META = b"\x00"


def cookie() -> str:
    """A session cookie as the server issues them: a random token only its browser holds."""
    return secrets.token_urlsafe(32)


def kernel() -> str:
    return str(uuid.uuid4())


def new_address(kernel_id: str | None = None, session_id: str | None = None) -> str:
    return session_address(session_id or cookie(), kernel_id or kernel())


def make_meta(
    address: str,
    generation: int,
    fields: Mapping[str, bytes],
    *,
    schema_tag: str = "v1",
    counter: int = 1,
    ring: KeyRing = RING,
) -> Meta:
    """A meta as the engine builds it: the manifest over ``fields`` signed by the ring's primary key."""
    tag = tag_digest(schema_tag)
    key_id, mac = ring.sign_manifest(
        address=address,
        tag=tag,
        counter=counter,
        # test values are often shorter than an envelope: sign what an envelope of them would end in
        fields={name: envelope_tag(data.rjust(TAG_SIZE, b"\0")) for name, data in fields.items()},
    )
    return Meta(tag, key_id, counter, mac, generation)


def flush_request(
    address: str,
    generation: int,
    fields: Mapping[str, bytes],
    *,
    schema_tag: str = "v1",
    ttl: float = TTL,
    removed: tuple[str, ...] = (),
    must_exist: bool = False,
    counter: int = 1,
) -> FlushRequest:
    meta = make_meta(address, generation, fields, schema_tag=schema_tag, counter=counter)
    return FlushRequest(address, meta, dict(fields), ttl, removed=removed, must_exist=must_exist)


def packed(meta: Meta, generation: int | None = None) -> bytes:
    """The meta field's bytes by hand: tag digest (4) || key id (4) || counter (4, BE) || MAC (16) ||
    ASCII generation (``meta``'s own unless another is given, e.g. after a takeover's bump)."""
    assert (len(meta.tag), len(meta.key_id), len(meta.mac)) == (4, 4, 16)
    digits = str(meta.generation if generation is None else generation).encode("ascii")
    return meta.tag + meta.key_id + meta.counter.to_bytes(4, "big") + meta.mac + digits


def schema_digest(schema_tag: str) -> bytes:
    """``tag_digest`` by hand: the first four bytes of the tag's SHA-256."""
    return hashlib.sha256(schema_tag.encode()).digest()[:4]


def named(fields: Mapping[str, bytes]) -> dict[bytes, bytes]:
    """Field names as the backends store and return them: raw UTF-8 bytes."""
    return {name.encode(): data for name, data in fields.items()}
