"""``PickleTypeCodec``: ``codec="pickle"``, for values with no JSON form."""

from __future__ import annotations

import pickle
from typing import Any

from ..errors import DecodeError, EncodeError, OversizeError

PICKLE_PROTOCOL = 5

_PICKLE_FAILURES = (pickle.PicklingError, TypeError, AttributeError, RecursionError, ValueError)


class _Full(Exception):
    """The capped pickle passed its cap; ``size`` is the output so far."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _CappedSink:
    """The pickler's output file: refuses the write that would take it past the cap.

    The pickler hands over a frame (about 64 KB) at a time and each big str or bytes in one
    piece, so a refused value costs at most the cap, a frame and its largest single string.
    """

    __slots__ = ("limit", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: Any) -> int:
        length = len(data) if type(data) is bytes else memoryview(data).nbytes
        self.size += length
        if self.size > self.limit:
            raise _Full(self.size)
        self.parts.append(data if type(data) is bytes else bytes(data))
        return length


class PickleTypeCodec:
    """``codec="pickle"``: any picklable value, no type check. Only behind SOLARA_STATE_ALLOW_PICKLE."""

    __slots__ = ("key", "type")

    def __init__(self, key: str, tp: Any) -> None:
        self.key = key
        self.type = tp

    def __repr__(self) -> str:
        return f"PickleTypeCodec({self.key!r})"

    def dumps(self, value: Any, *, max_bytes: int | None = None) -> bytes:
        """The pickle of ``value``; with ``max_bytes``, ``OversizeError`` as soon as the output passes it."""
        if max_bytes is None:
            try:
                return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
            except _PICKLE_FAILURES as exc:
                raise EncodeError(self.key, "", f"cannot be pickled ({exc})") from None
        if type(value) in (str, bytes) and len(value) > max_bytes:
            raise OversizeError(self.key, "", len(value), max_bytes, exact=False)
        sink = _CappedSink(max_bytes)
        try:
            pickle.Pickler(sink, protocol=PICKLE_PROTOCOL).dump(value)
        except _Full as full:
            raise OversizeError(self.key, "", full.size, max_bytes, exact=False) from None
        except _PICKLE_FAILURES as exc:
            raise EncodeError(self.key, "", f"cannot be pickled ({exc})") from None
        return b"".join(sink.parts)

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:  # unpickling can raise nearly anything
            raise DecodeError(self.key, "", f"cannot be unpickled ({type(exc).__name__}: {exc})") from None

    def unstructure(self, value: Any) -> Any:
        return value

    def structure(self, obj: Any) -> Any:
        return obj

    def check(self, value: Any) -> None:
        """Pickled values are not type-checked; only picklability is checked, at write."""

    def json_schema(self) -> dict[str, Any]:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": "stored with pickle; there is no JSON form to validate",
        }
