"""How a stored key or value looks when the operator commands read it raw from Redis.

``doctor`` samples and ``inspect`` counts what is under the prefix without going through the
engine: they tell a session's hash from anything else by its key, and read each value's first
bytes only. Both must read the stored layout the same way, so it is decided here, once.
"""

from __future__ import annotations

from typing import Literal

from ..address import ADDRESS, PART_LENGTH, SHARED_ADDRESS_LENGTH
from ..backends.base import STAMP_SIZE, TAG_DIGEST_SIZE, Meta
from ..envelope import FORMAT, MAX_VARINT_BYTES
from ..errors import BackendError

#: Bytes read of each stored value: a shared value's stamp and tag, the envelope header, its version.
HEAD_SIZE = STAMP_SIZE + TAG_DIGEST_SIZE + 3 + MAX_VARINT_BYTES


def key_kind(suffix: bytes) -> Literal["kernel", "shared", "foreign"]:
    """What the key's part after the prefix names: a kernel's hash, a browser session's shared hash, neither."""
    text = suffix.decode("ascii", "replace")
    if ADDRESS.fullmatch(text):
        return "kernel"
    if len(text) == SHARED_ADDRESS_LENGTH and ADDRESS.fullmatch(text + "A" * PART_LENGTH):
        return "shared"
    return "foreign"


def stored_meta(field: bytes | None) -> Meta | None:
    """A kernel hash's meta field, or None when it is absent or not one solara-persisted wrote."""
    if field is None:
        return None
    try:
        return Meta.unpack(field)
    except BackendError:
        return None


def envelope_version(head: bytes) -> int | None:
    """The spec version in an envelope's header (a varint after format, codec and key hint)."""
    if len(head) < 4 or head[0] != FORMAT:
        return None
    value = 0
    for position, byte in enumerate(head[3 : 3 + MAX_VARINT_BYTES]):
        value |= (byte & 0x7F) << (7 * position)
        if byte < 0x80:
            return value
    return None
