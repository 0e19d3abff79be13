"""The compiled form of a type (``_Node``) and what every node builder shares: limits, errors, helpers."""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable
from typing import Any

import attrs
import orjson

#: Deepest nesting a value may have, in JSON arrays and objects: deeper values (and cycles) are
#: refused at write, and deeper stored documents at read, before structuring recurses into them.
MAX_DEPTH = 64

_NoneType = type(None)
# Anything but plain builtins reaching orjson is a bug here: make it raise instead of serializing.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
# orjson (like most JSON readers) reads integers beyond 64 bits back as floats, so they are refused at write.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_JSON_KINDS = {
    _NoneType: "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


class _Mismatch(Exception):
    """A value or JSON object does not fit its type; carries the path, innermost segment first."""

    def __init__(self, problem: str, *, deep: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.deep = deep
        self.segments: list[str] = []
        self.chain: list[object] = []

    def push(self, segment: str, container: object) -> None:
        self.segments.append(segment)
        if self.deep:
            self.chain.append(container)

    def path(self) -> str:
        return "".join(reversed(self.segments))

    def describe(self) -> tuple[str, str]:
        """(path, problem); a too-deep value that revisits one of its own containers is a cycle."""
        segments = self.segments[::-1]
        if self.deep:
            seen: dict[int, int] = {}
            for depth, container in enumerate(reversed(self.chain)):
                first = seen.setdefault(id(container), depth)
                if first != depth:
                    back = "".join(segments[:first]) or "the value itself"
                    return "".join(
                        segments[:depth]
                    ), f"the value contains a cycle: this refers back to {back}"
        return "".join(segments), self.problem


class _Refusal(Exception):
    """A type the codec cannot represent; becomes ``UnsupportedTypeError`` with the site."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


class _Oversize(_Mismatch):
    """A capped encode passed its cap; ``size`` is the running lower bound of the payload at that point."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the encoded value is at least {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class _Budget:
    """The cap of one capped encode and a running lower bound of the bytes it will write.

    Every node has a ``size``, the fewest bytes any value of its type encodes to. Whoever picks a
    node for a value has taken its ``size`` already (a container takes its items' sizes and its
    separators on entry, in O(1)); the node's ``un`` takes only what its value writes beyond that,
    such as a string's characters. So a class instance costs no step of its own, and a value far
    over the cap is refused after O(cap) work and memory, long before its JSON tree or payload exists.
    """

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit  # per-leaf callers subtract from it inline and call ``over`` below zero

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise self.over()

    def over(self) -> _Oversize:
        return _Oversize(self.limit - self.left, self.limit)


def _too_deep() -> _Mismatch:
    return _Mismatch(f"nesting deeper than {MAX_DEPTH} levels", deep=True)


def _kind(obj: object) -> str:
    return _JSON_KINDS.get(type(obj), type(obj).__qualname__)


def type_name(tp: Any) -> str:
    """A short, module-free spelling of a type for messages: ``dict[str, Line | None]``."""
    if tp is None or tp is _NoneType:
        return "None"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(map(type_name, args))
    if origin is typing.Literal:
        return f"Literal[{', '.join(f'{type(a).__qualname__}.{a.name}' if isinstance(a, enum.Enum) else repr(a) for a in args)}]"
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is not None:
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            inner = f"{type_name(args[0])}, ..."
        else:
            inner = ", ".join(map(type_name, args)) if args else "()"
        return f"{getattr(origin, '__qualname__', origin)}[{inner}]"
    if isinstance(tp, type):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


@attrs.define
class _Defs:
    """The ``$defs`` of a JSON Schema being built: one entry per class, named once."""

    schemas: dict[str, Any] = attrs.Factory(dict)
    names: dict[type, str] = attrs.Factory(dict)

    def ref(self, cls: type, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        name = self.names.get(cls)
        if name is None:
            base = re.sub(r"[^A-Za-z0-9_]", "_", cls.__qualname__)
            name, n = base, 1
            while name in self.schemas:
                n += 1
                name = f"{base}_{n}"
            self.names[cls] = name
            self.schemas[name] = {}  # reserved first, so a recursive class refers to itself
            self.schemas[name] = build()
        return {"$ref": f"#/$defs/{name}"}


@attrs.define(eq=False)
class _Node:
    """Everything compiled for one type.

    ``un(value, depth)`` checks and unstructures; ``st(obj)`` strictly structures. ``ok`` and
    ``ok_many`` are exact tests for "valid, and already its own JSON tree" (plain lists,
    str-keyed dicts, finite floats, 64-bit ints...): such values are handed to the encoder, and
    such decoded JSON returned, untouched. ``ok_many`` tests a whole batch with C-level passes
    (nested containers are flattened with ``itertools.chain``), so checking a 100 KB table costs
    a few passes over it rather than a Python call per item. None where no such shortcut exists.
    ``json_ok`` / ``json_ok_many`` are the same tests for trees decoded by orjson, which can skip
    what orjson already guarantees (string keys, 64-bit ints, finite floats): only types remain.
    ``owns`` is a shallow type test used to pick a union member for a value.
    ``size`` is the fewest bytes any value of the type encodes to (see ``_Budget``).
    ``floor`` / ``floor_many`` are lower bounds of the encoded size in bytes of a value (a batch)
    that passed ``ok`` (``ok_many``), computed with the same kind of C-level passes, so a capped
    encode can refuse a value before orjson reserves memory for it; ``floor`` is None where a
    value is a few bytes whatever it holds (numbers, booleans, None). ``depth`` is the deepest JSON
    nesting the type allows, None for a recursive type (no bound but ``MAX_DEPTH``).
    """

    tp: Any
    name: str
    kinds: frozenset[str] = frozenset()
    un: Callable[[Any, int], Any] = attrs.field(default=None)
    st: Callable[..., Any] = attrs.field(default=None)
    owns: Callable[[Any], bool] = attrs.field(default=None)
    schema: Callable[[_Defs], dict[str, Any]] = attrs.field(default=None)
    ok: Callable[[Any], bool] | None = None
    ok_many: Callable[[Iterable[Any]], bool] | None = None
    hashable: bool = True
    #: None, Literal and Enum: each accepted JSON value, keyed (python type, value), to the value it gives.
    values: dict[tuple[type, Any], Any] | None = None
    json_ok: Callable[[Any], bool] | None = attrs.field(
        default=attrs.Factory(lambda self: self.ok, takes_self=True)
    )
    json_ok_many: Callable[[Iterable[Any]], bool] | None = attrs.field(
        default=attrs.Factory(lambda self: self.ok_many, takes_self=True)
    )
    size: int = 1
    floor: Callable[[Any], int] | None = None
    floor_many: Callable[[Collection[Any]], int] = attrs.field(default=len)
    depth: int | None = 0


def _deepest(depths: Iterable[int | None]) -> int | None:
    """The deepest of these nesting depths (None, unbounded, wins)."""
    known = list(depths)
    if None in known:
        return None
    return max(known, default=0)  # type: ignore[type-var]


def _nested(depths: Iterable[int | None]) -> int | None:
    """The depth of a JSON container of items of these depths."""
    deepest = _deepest(depths)
    return None if deepest is None else deepest + 1


def _many_from_one(one: Callable[[Any], bool] | None) -> Callable[[Iterable[Any]], bool] | None:
    if one is None:
        return None
    return lambda xs: all(map(one, xs))


def _types_within(allowed: frozenset[type]) -> Callable[[Iterable[Any]], bool]:
    return lambda xs: set(map(type, xs)) <= allowed


def _mismatch(name: str, value: object) -> _Mismatch:
    return _Mismatch(f"expected {name}, got {type(value).__qualname__}")


def _dec_mismatch(name: str, obj: object) -> _Mismatch:
    return _Mismatch(f"expected {name}, got JSON {_kind(obj)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
