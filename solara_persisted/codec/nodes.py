"""The compiled form of a type (``Node``) and what every node builder shares: limits, errors, helpers.

The builders (``scalars``, ``value_sets``, ``containers``, ``unions``, ``classes``) import only
from here, so nothing they share lives in one builder and is borrowed by another.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
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

NoneType = type(None)
# Anything but plain builtins reaching orjson is a bug here: make it raise instead of serializing.
ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
# orjson (like most JSON readers) reads integers beyond 64 bits back as floats, so they are refused at write.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_JSON_KINDS = {
    NoneType: "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


class Mismatch(Exception):
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


class Refusal(Exception):
    """A type the codec cannot represent; becomes ``UnsupportedTypeError`` with the site."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


class Oversize(Mismatch):
    """A capped encode passed its cap; ``size`` is the running lower bound of the payload at that point."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the encoded value is at least {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class Budget:
    """The cap of one capped encode and a running lower bound of the bytes it will write.

    Every node has a ``size``, the fewest bytes any value of its type encodes to. Whoever picks a
    node for a value has taken its ``size`` already (a container takes its items' sizes and its
    separators on entry, in O(1)); the node's ``unstructure`` takes only what its value writes
    beyond that, such as a string's characters. So a class instance costs no step of its own, and a
    value far over the cap is refused after O(cap) work and memory, long before its JSON tree or
    payload exists.
    """

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit  # per-leaf callers subtract from it inline and call ``over`` below zero

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise self.over()

    def over(self) -> Oversize:
        return Oversize(self.limit - self.left, self.limit)


def too_deep() -> Mismatch:
    """Nesting past ``MAX_DEPTH``; ``deep`` so that ``describe`` can tell a cycle from plain depth."""
    return Mismatch(f"nesting deeper than {MAX_DEPTH} levels", deep=True)


def json_kind(obj: object) -> str:
    """The JSON name of a decoded value's kind (``integer``, ``object``...) for messages."""
    return _JSON_KINDS.get(type(obj), type(obj).__qualname__)


def type_name(tp: Any) -> str:
    """A short, module-free spelling of a type for messages: ``dict[str, Line | None]``."""
    if tp is None or tp is NoneType:
        return "None"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(map(type_name, args))
    if origin is typing.Literal:
        return f"Literal[{', '.join(f'{type(arg).__qualname__}.{arg.name}' if isinstance(arg, enum.Enum) else repr(arg) for arg in args)}]"
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
class Defs:
    """The ``$defs`` of a JSON Schema being built: one entry per class, named once."""

    schemas: dict[str, Any] = attrs.Factory(dict)
    names: dict[type, str] = attrs.Factory(dict)

    def ref(self, cls: type, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        name = self.names.get(cls)
        if name is None:
            base = re.sub(r"[^A-Za-z0-9_]", "_", cls.__qualname__)
            name, number = base, 1
            while name in self.schemas:
                number += 1
                name = f"{base}_{number}"
            self.names[cls] = name
            self.schemas[name] = {}  # reserved first, so a recursive class refers to itself
            self.schemas[name] = build()
        return {"$ref": f"#/$defs/{name}"}


@attrs.define(eq=False)
class Node:
    """Everything compiled for one type.

    ``unstructure(value, depth, budget)`` checks a value and returns its JSON tree;
    ``structure(obj)`` strictly structures a decoded JSON tree. ``native`` and ``native_many``
    are exact tests for "valid, and already its own JSON tree" (plain lists, str-keyed dicts,
    finite floats, 64-bit ints...): such values are handed to the encoder, and such decoded JSON
    returned, untouched. ``native_many`` tests a whole batch with C-level passes (nested
    containers are flattened with ``itertools.chain``), so checking a 100 KB table costs a few
    passes over it rather than a Python call per item. None where no such shortcut exists.
    ``json_native`` / ``json_native_many`` are the same tests for trees decoded by orjson, which
    can skip what orjson already guarantees (string keys, 64-bit ints, finite floats): only types
    remain. ``owns`` is a shallow type test used to pick a union member for a value.
    ``size`` is the fewest bytes any value of the type encodes to (see ``Budget``).
    ``floor`` / ``floor_many`` are lower bounds of the encoded size in bytes of a value (a batch)
    that passed ``native`` (``native_many``), computed with the same kind of C-level passes, so a
    capped encode can refuse a value before orjson reserves memory for it; ``floor`` is None where
    a value is a few bytes whatever it holds (numbers, booleans, None). ``depth`` is the deepest
    JSON nesting the type allows, None for a recursive type (no bound but ``MAX_DEPTH``).
    """

    tp: Any
    name: str
    kinds: frozenset[str] = frozenset()
    unstructure: Callable[..., Any] = attrs.field(default=None)
    structure: Callable[..., Any] = attrs.field(default=None)
    owns: Callable[[Any], bool] = attrs.field(default=None)
    schema: Callable[[Defs], dict[str, Any]] = attrs.field(default=None)
    native: Callable[[Any], bool] | None = None
    native_many: Callable[[Iterable[Any]], bool] | None = None
    hashable: bool = True
    #: None, Literal and Enum: each accepted JSON value, keyed (python type, value), to the value it gives.
    values: dict[tuple[type, Any], Any] | None = None
    json_native: Callable[[Any], bool] | None = attrs.field(
        default=attrs.Factory(lambda self: self.native, takes_self=True)
    )
    json_native_many: Callable[[Iterable[Any]], bool] | None = attrs.field(
        default=attrs.Factory(lambda self: self.native_many, takes_self=True)
    )
    size: int = 1
    floor: Callable[[Any], int] | None = None
    floor_many: Callable[[Collection[Any]], int] = attrs.field(default=len)
    depth: int | None = 0


def is_class(tp: Any) -> bool:
    """Whether ``tp`` is an attrs class or dataclass (structured field by field)."""
    return isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp))


def deepest(depths: Iterable[int | None]) -> int | None:
    """The deepest of these nesting depths (None, unbounded, wins)."""
    known = list(depths)
    if None in known:
        return None
    return max(known, default=0)  # type: ignore[type-var]


def nested_depth(depths: Iterable[int | None]) -> int | None:
    """The depth of a JSON container of items of these depths."""
    deepest_item = deepest(depths)
    return None if deepest_item is None else deepest_item + 1


def many_from_one(one: Callable[[Any], bool] | None) -> Callable[[Iterable[Any]], bool] | None:
    """A batch test that applies a per-value test to each item (None stays None)."""
    if one is None:
        return None
    return lambda batch: all(map(one, batch))


def types_within(allowed: frozenset[type]) -> Callable[[Iterable[Any]], bool]:
    """A batch test: every item's exact type is one of ``allowed``."""
    return lambda batch: set(map(type, batch)) <= allowed


def finite_floats(batch: Iterable[Any]) -> bool:
    """Whether every item is a float and none is NaN or infinite, in two C-level passes."""
    if not set(map(type, batch)) <= {float}:
        return False
    # A NaN or infinity makes the sum non-finite; an overflowing sum is only a false alarm
    # that sends the value down the precise per-element path.
    return math.isfinite(sum(batch))


def type_mismatch(name: str, value: object) -> Mismatch:
    """A written value is not of the expected type."""
    return Mismatch(f"expected {name}, got {type(value).__qualname__}")


def json_mismatch(name: str, obj: object) -> Mismatch:
    """A decoded JSON value is not of the expected kind."""
    return Mismatch(f"expected {name}, got JSON {json_kind(obj)}")


def short_repr(value: Any) -> str:
    """``repr`` cut to 40 characters, for messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def key_segment(key: str) -> str:
    """The path segment of an object member: ``["name"]``."""
    return "[" + json.dumps(key, ensure_ascii=False) + "]"
