"""``TypeCodec``: the JSON codec of one declared type, the object specs hold and call."""

from __future__ import annotations

import json
from itertools import chain
from typing import Any

import orjson

from ..errors import DecodeError, EncodeError, OversizeError
from .nodes import MAX_DEPTH, ORJSON_OPTIONS, Budget, Defs, Mismatch, Node, Oversize, key_segment

_CONTAINERS = frozenset({list, dict})
_COLON = ord(":")


class TypeCodec:
    """The JSON codec of one declared type, bound to a persisted key for error messages."""

    __slots__ = ("_deep", "_floor", "_json_native", "_native", "_node", "key", "type")

    def __init__(self, key: str, tp: Any, node: Node) -> None:
        self.key = key
        self.type = tp
        self._node = node
        self._native = node.native
        self._json_native = node.json_native
        self._floor = node.floor
        # Only a type that can nest deeper than MAX_DEPTH (a recursive class) needs the depth scan on
        # read: structuring any other type stops, at the latest, where the type's own nesting ends.
        self._deep = node.depth is None or node.depth > MAX_DEPTH

    def __repr__(self) -> str:
        return f"TypeCodec({self.key!r}, {self._node.name})"

    def dumps(self, value: Any, *, max_bytes: int | None = None) -> bytes:
        """Compact UTF-8 JSON of ``value``; ``EncodeError`` (with the path) if it does not fit the type.

        With ``max_bytes``, a longer payload raises ``OversizeError``. orjson reserves several times
        its output before writing (up to ~10x a string's length, far more for many small items), so
        it only ever sees a value whose lower bound of the output fits: that bound is taken in the
        same C-level passes as the type check, or as a running total during the checked walk, which
        stops once it passes the cap, before the value's JSON tree or payload is built.
        """
        native = self._native
        if max_bytes is None:
            if native is not None and native(value):
                try:
                    return orjson.dumps(value, option=ORJSON_OPTIONS)
                except TypeError:
                    pass  # a lone surrogate: the checked path reports it
            return self._write(self.unstructure(value))
        if native is not None and native(value):
            floor = self._floor
            if floor is not None:
                bound = floor(value)
                if bound > max_bytes:
                    raise OversizeError(self.key, "", bound, max_bytes, exact=False)
            try:
                payload = orjson.dumps(value, option=ORJSON_OPTIONS)
            except TypeError:
                pass  # a lone surrogate: the checked path reports it
            else:
                if len(payload) > max_bytes:
                    raise OversizeError(self.key, "", len(payload), max_bytes, exact=True)
                return payload
        budget = Budget(max_bytes)
        try:
            budget.take(self._node.size)
            tree = self._node.unstructure(value, 0, budget)
        except Oversize as oversize:
            raise OversizeError(self.key, oversize.path(), oversize.size, max_bytes, exact=False) from None
        except Mismatch as mismatch:
            path, problem = mismatch.describe()
            raise EncodeError(self.key, path, problem) from None
        payload = self._write(tree)
        if len(payload) > max_bytes:
            raise OversizeError(self.key, "", len(payload), max_bytes, exact=True)
        return payload

    def _write(self, tree: Any) -> bytes:
        try:
            return orjson.dumps(tree, option=ORJSON_OPTIONS)
        except TypeError as exc:
            raise EncodeError(self.key, "", f"cannot be written as JSON: {exc}") from None

    def loads(self, data: bytes) -> Any:
        """Strictly decode bytes written by ``dumps``; ``DecodeError`` on anything else.

        Beyond what structuring checks, a document is refused if an object repeats a key (readers
        disagree on which value wins) or, for a type that could follow it, if it nests deeper
        than ``MAX_DEPTH`` arrays and objects. Those two errors name a path in the stored JSON
        (``["items"][0]["sku"]``), as no type has been applied yet.
        """
        return self.structure(parse_json(self.key, data, self._deep))

    def parse(self, data: bytes) -> Any:
        """The JSON tree of stored bytes, with the checks of ``loads`` but no structuring.

        For a value stored at another version (a migration's input), so the depth limit applies
        whatever the declared type: the tree has another version's shape.
        """
        return parse_json(self.key, data, True)

    def unstructure(self, value: Any) -> Any:
        """The value as a JSON tree of dicts, lists and scalars (sharing unchanged lists and dicts with ``value``)."""
        try:
            return self._node.unstructure(value, 0)
        except Mismatch as mismatch:
            path, problem = mismatch.describe()
            raise EncodeError(self.key, path, problem) from None

    def structure(self, obj: Any) -> Any:
        """Turn a decoded JSON tree back into a value of the declared type, strictly."""
        json_native = self._json_native
        if json_native is not None and json_native(obj):
            return obj
        try:
            return self._node.structure(obj)
        except Mismatch as mismatch:
            raise DecodeError(self.key, mismatch.path(), mismatch.problem) from None
        except RecursionError:
            raise DecodeError(self.key, "", "stored value nested too deeply") from None

    def check(self, value: Any) -> None:
        """Raise ``EncodeError`` unless ``value`` fits the declared type."""
        self.unstructure(value)

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema 2020-12 document for the stored JSON form of the type."""
        defs = Defs()
        root = self._node.schema(defs)
        schema: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema", **root}
        if defs.schemas:
            schema["$defs"] = defs.schemas
        return schema


# --------------------------------------------------------------------------- read-side scans


def parse_json(key: str, data: bytes, deep: bool) -> Any:
    """The JSON tree of stored bytes for ``key``: a repeated object key, and with ``deep`` nesting past
    ``MAX_DEPTH``, is a ``DecodeError``."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(key, "", f"not valid JSON ({exc})") from None
    if type(obj) in _CONTAINERS:  # a scalar document can neither nest nor repeat a key
        if type(data) is not bytes:
            data = data.encode() if isinstance(data, str) else bytes(data)
        if deep and _may_be_too_deep(obj, data) and _deeper_than_max(obj):
            raise DecodeError(key, _deep_path(obj), f"nesting deeper than {MAX_DEPTH} levels")
        # Every object member has a colon, so colons == members of a top-level object means no
        # other object and no repeat. Else the writer's bytes are exactly what orjson writes back
        # for what it read, which a dropped repeat cannot be: only other bytes are parsed again.
        if _COLON in data:  # an int operand: the cheapest test, for the many documents without one
            colons = data.count(b":")
            if colons > 1 and not (type(obj) is dict and colons == len(obj)) and not _rewrites_to(obj, data):
                _refuse_duplicates(key, data)
    return obj


# In orjson's two-space indented form, whatever sits inside n arrays and objects starts a line with
# 2n spaces, and a container nested MAX_DEPTH + 1 deep sits (or, if not empty, closes) inside
# MAX_DEPTH of them; strings cannot hold a raw newline.
_DEEP_LINE = b"\n" + b"  " * MAX_DEPTH


def _may_be_too_deep(obj: Any, data: bytes) -> bool:
    """A cheap necessary condition for nesting deeper than MAX_DEPTH: enough brackets, then a deep line."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    try:
        return _DEEP_LINE in orjson.dumps(obj, option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:  # past orjson's own nesting limit
        return True


def _deeper_than_max(obj: Any) -> bool:
    """Whether a decoded tree nests more than MAX_DEPTH arrays and objects, one pass per level."""
    level = [obj]
    for _ in range(MAX_DEPTH):
        containers = [item for item in level if type(item) in _CONTAINERS]
        if not containers:
            return False
        level = [
            *chain.from_iterable(container for container in containers if type(container) is list),
            *chain.from_iterable(container.values() for container in containers if type(container) is dict),
        ]
    return not _CONTAINERS.isdisjoint(map(type, level))


def _deep_path(obj: Any) -> str:
    """The path of the first container nested MAX_DEPTH deep (only run once the tree is known too deep)."""
    stack: list[tuple[Any, int, str]] = [(obj, 0, "")]
    while stack:
        node, depth, path = stack.pop()
        if depth == MAX_DEPTH:
            if type(node) in _CONTAINERS:
                return path
            continue
        if type(node) is list:
            stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in reversed(list(enumerate(node))))
        elif type(node) is dict:
            stack.extend((item, depth + 1, path + key_segment(name)) for name, item in reversed(node.items()))
    return ""


def _rewrites_to(obj: Any, data: bytes) -> bool:
    try:
        return orjson.dumps(obj) == data
    except orjson.JSONEncodeError:  # deeper than orjson writes: not the writer's bytes
        return False


class _Repeated(dict):  # type: ignore[type-arg]
    """An object whose source repeated ``key``."""

    key: str


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            break
        seen.add(name)
    marked = _Repeated(out)
    marked.key = name
    return marked


def _refuse_duplicates(key: str, data: bytes) -> None:
    """Parse other-than-written bytes again, keeping every key, and refuse the first repeated one."""
    try:
        tree = json.loads(data.decode("utf-8"), object_pairs_hook=_pairs)
    except RecursionError:
        raise DecodeError(key, "", "stored value nested too deeply") from None
    except ValueError as exc:  # orjson took it, so this is not expected; refuse rather than guess
        raise DecodeError(key, "", f"not valid JSON ({exc})") from None
    stack: list[tuple[Any, str]] = [(tree, "")]
    while stack:
        node, path = stack.pop()
        if type(node) is _Repeated:
            raise DecodeError(key, path + key_segment(node.key), "the object repeats this key")
        if type(node) is list:
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(node))))
        elif isinstance(node, dict):
            stack.extend((item, path + key_segment(name)) for name, item in reversed(node.items()))
