"""``TypeCodec``: the JSON codec of one declared type, the object specs hold and call."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import DecodeError, EncodeError
from .nodes import _ORJSON_OPTIONS, _Defs, _Mismatch, _Node


class TypeCodec:
    """The JSON codec of one declared type, bound to a persisted key for error messages."""

    __slots__ = ("_json_ok", "_node", "_ok", "key", "type")

    def __init__(self, key: str, tp: Any, node: _Node) -> None:
        self.key = key
        self.type = tp
        self._node = node
        self._ok = node.ok
        self._json_ok = node.json_ok

    def __repr__(self) -> str:
        return f"TypeCodec({self.key!r}, {self._node.name})"

    def dumps(self, value: Any) -> bytes:
        """Compact UTF-8 JSON of ``value``; ``EncodeError`` (with the path) if it does not fit the type."""
        ok = self._ok
        if ok is not None and ok(value):
            try:
                return orjson.dumps(value, option=_ORJSON_OPTIONS)
            except TypeError:
                pass  # a lone surrogate: the checked path reports it
        tree = self.unstructure(value)
        try:
            return orjson.dumps(tree, option=_ORJSON_OPTIONS)
        except TypeError as exc:
            raise EncodeError(self.key, "", f"cannot be written as JSON: {exc}") from None

    def loads(self, data: bytes) -> Any:
        """Strictly decode bytes written by ``dumps``; ``DecodeError`` on anything else."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(self.key, "", f"not valid JSON ({exc})") from None
        return self.structure(obj)

    def unstructure(self, value: Any) -> Any:
        """The value as a JSON tree of dicts, lists and scalars (sharing unchanged lists and dicts with ``value``)."""
        try:
            return self._node.un(value, 0)
        except _Mismatch as m:
            path, problem = m.describe()
            raise EncodeError(self.key, path, problem) from None

    def structure(self, obj: Any) -> Any:
        """Turn a decoded JSON tree back into a value of the declared type, strictly."""
        json_ok = self._json_ok
        if json_ok is not None and json_ok(obj):
            return obj
        try:
            return self._node.st(obj)
        except _Mismatch as m:
            raise DecodeError(self.key, m.path(), m.problem) from None
        except RecursionError:
            raise DecodeError(self.key, "", "stored value nested too deeply") from None

    def check(self, value: Any) -> None:
        """Raise ``EncodeError`` unless ``value`` fits the declared type."""
        self.unstructure(value)

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema 2020-12 document for the stored JSON form of the type."""
        defs = _Defs()
        root = self._node.schema(defs)
        schema: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema", **root}
        if defs.schemas:
            schema["$defs"] = defs.schemas
        return schema
