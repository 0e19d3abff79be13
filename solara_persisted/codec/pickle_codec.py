"""``PickleTypeCodec``: ``codec="pickle"``, for values with no JSON form."""

from __future__ import annotations

import pickle
from typing import Any

from ..errors import DecodeError, EncodeError

PICKLE_PROTOCOL = 5


class PickleTypeCodec:
    """``codec="pickle"``: any picklable value, no type check. Only behind SOLARA_STATE_ALLOW_PICKLE."""

    __slots__ = ("key", "type")

    def __init__(self, key: str, tp: Any) -> None:
        self.key = key
        self.type = tp

    def __repr__(self) -> str:
        return f"PickleTypeCodec({self.key!r})"

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError, ValueError) as exc:
            raise EncodeError(self.key, "", f"cannot be pickled ({exc})") from None

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
