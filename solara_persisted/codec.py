"""Values <-> JSON bytes, always through the declared type.

A persisted value is checked against its declared type when it is written, and stored bytes are
structured back strictly when they are read: a restore either yields exactly what the type says
or raises ``DecodeError`` (no ``int("3")``, no float-to-int truncation, no class names in the
data). ``compile_type`` does all type analysis once per declaration and returns a ``TypeCodec``
whose hot paths are closures. JSON-native shapes (``int``, ``list[str]``, ``dict[str, float]``,
``list[dict[str, int | str]]``...) are checked with a few C-level passes and handed to orjson
as they are, which is what lets encode and restore run several times faster than Solara's
built-in engine. attrs classes and dataclasses are structured by cattrs-generated functions, and
unions of classes are told apart by cattrs' unique-field disambiguation, so a stored value never
names its class and renaming a class cannot break a restore.

Integers are limited to the 64-bit range, because orjson (like most JSON readers) reads larger
ones back as floats; use ``Decimal`` for bigger numbers.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import pickle
import re
import threading
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

import attrs
import cattrs
import orjson
from cattrs.disambiguators import create_default_dis_func
from cattrs.errors import AttributeValidationNote, ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from .errors import CodecError, DecodeError, EncodeError, UnsupportedTypeError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_DEPTH",
    "PickleTypeCodec",
    "TypeCodec",
    "compile_type",
    "converter",
    "type_name",
]

#: Deepest nesting a value may have; deeper values (and cycles) are refused at write.
MAX_DEPTH = 64
PICKLE_PROTOCOL = 5

_NoneType = type(None)
# Anything but plain builtins reaching orjson is a bug here: make it raise instead of serializing.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
# orjson (like most JSON readers) reads integers beyond 64 bits back as floats, so they are refused at write.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
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


def _key_segment(key: str) -> str:
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


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


def _many_from_one(one: Callable[[Any], bool] | None) -> Callable[[Iterable[Any]], bool] | None:
    if one is None:
        return None
    return lambda xs: all(map(one, xs))


def _types_within(allowed: frozenset[type]) -> Callable[[Iterable[Any]], bool]:
    return lambda xs: set(map(type, xs)) <= allowed


_LIST_ONLY = frozenset({list})
_DICT_ONLY = frozenset({dict})


# --------------------------------------------------------------------------- scalars


def _mismatch(name: str, value: object) -> _Mismatch:
    return _Mismatch(f"expected {name}, got {type(value).__qualname__}")


def _dec_mismatch(name: str, obj: object) -> _Mismatch:
    return _Mismatch(f"expected {name}, got JSON {_kind(obj)}")


def _none_node() -> _Node:
    def un(v: Any, d: int = 0) -> None:
        if v is not None:
            raise _mismatch("None", v)

    def st(o: Any, _t: Any = None) -> None:
        if o is not None:
            raise _dec_mismatch("null", o)

    def is_none(v: Any) -> bool:
        return v is None

    return _Node(
        _NoneType,
        "None",
        frozenset({"null"}),
        un,
        st,
        is_none,
        lambda defs: {"type": "null"},
        is_none,
        _types_within(frozenset({_NoneType})),
        values={(_NoneType, None): None},
    )


def _bool_node() -> _Node:
    def un(v: Any, d: int = 0) -> bool:
        if type(v) is not bool:
            raise _mismatch("bool", v)
        return v

    def st(o: Any, _t: Any = None) -> bool:
        if type(o) is not bool:
            raise _dec_mismatch("boolean", o)
        return o

    def is_bool(v: Any) -> bool:
        return type(v) is bool

    many = _types_within(frozenset({bool}))
    return _Node(
        bool,
        "bool",
        frozenset({"boolean"}),
        un,
        st,
        is_bool,
        lambda defs: {"type": "boolean"},
        is_bool,
        many,
    )


def _int_node() -> _Node:
    def un(v: Any, d: int = 0) -> int:
        if isinstance(v, int) and not isinstance(v, bool):
            if not INT_MIN <= v <= INT_MAX:
                raise _Mismatch(
                    f"{_short(v)} is outside the 64-bit integer range JSON readers agree on; store a Decimal or str"
                )
            return v if type(v) is int else int(v)
        raise _mismatch("int", v)

    def st(o: Any, _t: Any = None) -> int:
        if type(o) is not int:
            raise _dec_mismatch("integer", o)
        return o

    def is_int(v: Any) -> bool:
        return type(v) is int and INT_MIN <= v <= INT_MAX

    def owns(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def many(xs: Iterable[Any]) -> bool:
        return set(map(type, xs)) <= {int} and min(xs, default=0) >= INT_MIN and max(xs, default=0) <= INT_MAX

    def is_json_int(o: Any) -> bool:
        return type(o) is int

    return _Node(
        int,
        "int",
        frozenset({"number"}),
        un,
        st,
        owns,
        lambda defs: {"type": "integer"},
        is_int,
        many,
        json_ok=is_json_int,
        json_ok_many=_types_within(frozenset({int})),
    )


def _finite_floats(xs: Iterable[Any]) -> bool:
    if not set(map(type, xs)) <= {float}:
        return False
    # A NaN or infinity makes the sum non-finite; an overflowing sum is only a false alarm
    # that sends the value down the precise per-element path.
    return math.isfinite(sum(xs))


def _float_node() -> _Node:
    def un(v: Any, d: int = 0) -> float:
        if isinstance(v, float):
            if v - v != 0.0:
                raise _Mismatch(f"{v!r} is not a finite number; JSON has no NaN or infinity")
            return float(v)
        if isinstance(v, int) and not isinstance(v, bool):
            try:
                return float(v)
            except OverflowError:
                raise _Mismatch("integer too large for a float") from None
        raise _mismatch("float", v)

    def st(o: Any, _t: Any = None) -> float:
        if type(o) is float:
            if o - o != 0.0:
                raise _Mismatch("number out of float range")
            return o
        if type(o) is int:
            try:
                return float(o)
            except OverflowError:
                raise _Mismatch("integer too large for a float") from None
        raise _dec_mismatch("number", o)

    def ok(v: Any) -> bool:
        return type(v) is float and v - v == 0.0

    def is_json_float(o: Any) -> bool:
        return type(o) is float

    def owns(v: Any) -> bool:
        return isinstance(v, float)

    return _Node(
        float,
        "float",
        frozenset({"number"}),
        un,
        st,
        owns,
        lambda defs: {"type": "number"},
        ok,
        _finite_floats,
        json_ok=is_json_float,
        json_ok_many=_types_within(frozenset({float})),
    )


def _str_node() -> _Node:
    def un(v: Any, d: int = 0) -> str:
        if type(v) is str:
            return v
        if isinstance(v, str):
            return str.__str__(v)
        raise _mismatch("str", v)

    def st(o: Any, _t: Any = None) -> str:
        if type(o) is not str:
            raise _dec_mismatch("string", o)
        return o

    def is_str(v: Any) -> bool:
        return type(v) is str

    def owns(v: Any) -> bool:
        return isinstance(v, str)

    many = _types_within(frozenset({str}))
    return _Node(
        str,
        "str",
        frozenset({"string"}),
        un,
        st,
        owns,
        lambda defs: {"type": "string"},
        is_str,
        many,
    )


def _string_form_node(
    tp: type,
    to_text: Callable[[Any], str],
    from_text: Callable[[str], Any],
    schema: dict[str, Any],
    owns: Callable[[Any], bool],
    what: str,
) -> _Node:
    """A type stored as a JSON string (datetimes, UUID, Decimal, bytes)."""
    name = tp.__qualname__

    def un(v: Any, d: int = 0) -> str:
        if not owns(v):
            raise _mismatch(name, v)
        return to_text(v)

    def st(o: Any, _t: Any = None) -> Any:
        if type(o) is not str:
            raise _dec_mismatch(f"a string holding {what}", o)
        try:
            return from_text(o)
        except (ValueError, ArithmeticError, binascii.Error):
            raise _Mismatch(f"{o[:64]!r} is not {what}") from None

    return _Node(tp, name, frozenset({"string"}), un, st, owns, lambda defs: dict(schema))


def _iso_text(v: dt.datetime | dt.time) -> str:
    offset = v.utcoffset()
    if offset is not None and offset.microseconds:
        # Python's fromisoformat misreads some such offsets (e.g. +00:00:00.000001 as UTC).
        raise _Mismatch(f"the timezone offset {offset} has a fraction of a second; use whole seconds")
    return v.isoformat()


def _is_datetime(v: Any) -> bool:
    return isinstance(v, dt.datetime)


def _is_date(v: Any) -> bool:
    return isinstance(v, dt.date) and not isinstance(v, dt.datetime)


def _is_time(v: Any) -> bool:
    return isinstance(v, dt.time)


def _is_uuid(v: Any) -> bool:
    return isinstance(v, uuid.UUID)


def _is_bytes(v: Any) -> bool:
    return isinstance(v, bytes)


def _is_decimal(v: Any) -> bool:
    return isinstance(v, decimal.Decimal)


def _decimal_text(v: decimal.Decimal) -> str:
    if not v.is_finite():
        raise _Mismatch(f"Decimal {v} is not finite; only finite decimals are stored")
    return str(v)


def _decimal_from_text(text: str) -> decimal.Decimal:
    if not _DECIMAL.fullmatch(text):
        raise ValueError(text)
    return decimal.Decimal(text)


def _bytes_from_text(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


_ISO_DATETIME = (
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"
)
_ISO_TIME = r"^\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"

_SCALAR_FACTORIES: dict[Any, Callable[[], _Node]] = {
    _NoneType: _none_node,
    bool: _bool_node,
    int: _int_node,
    float: _float_node,
    str: _str_node,
    # Naive datetimes are allowed, so "date-time" (RFC 3339, offset required) would be wrong.
    dt.datetime: lambda: _string_form_node(
        dt.datetime,
        _iso_text,
        dt.datetime.fromisoformat,
        {"type": "string", "pattern": _ISO_DATETIME},
        _is_datetime,
        "an ISO 8601 datetime",
    ),
    dt.date: lambda: _string_form_node(
        dt.date,
        dt.date.isoformat,
        dt.date.fromisoformat,
        {"type": "string", "format": "date"},
        _is_date,
        "an ISO 8601 date",
    ),
    dt.time: lambda: _string_form_node(
        dt.time,
        _iso_text,
        dt.time.fromisoformat,
        {"type": "string", "pattern": _ISO_TIME},
        _is_time,
        "an ISO 8601 time",
    ),
    uuid.UUID: lambda: _string_form_node(
        uuid.UUID, str, uuid.UUID, {"type": "string", "format": "uuid"}, _is_uuid, "a UUID"
    ),
    decimal.Decimal: lambda: _string_form_node(
        decimal.Decimal,
        _decimal_text,
        _decimal_from_text,
        {"type": "string", "pattern": "^" + _DECIMAL.pattern + "$"},
        _is_decimal,
        "a decimal number",
    ),
    bytes: lambda: _string_form_node(
        bytes,
        lambda v: base64.b64encode(v).decode("ascii"),
        _bytes_from_text,
        {"type": "string", "contentEncoding": "base64"},
        _is_bytes,
        "base64 data",
    ),
}


# --------------------------------------------------------------------------- value sets


def _json_scalar_kind(value: Any) -> str:
    kind = _kind(value)
    return "number" if kind == "integer" else kind


def _value_set_node(tp: Any, name: str, members: list[tuple[Any, Any]], schema: dict[str, Any]) -> _Node:
    """Literal and Enum types: a closed set of (python value, JSON value) pairs.

    Lookups are keyed by (type, value) so that True never stands in for 1, nor 1 for an IntEnum.
    """
    by_json = {(type(j), j): p for p, j in members}
    by_python = {(type(p), p): j for p, j in members}

    def un(v: Any, d: int = 0) -> Any:
        try:
            return by_python[(type(v), v)]
        except (KeyError, TypeError):
            raise _Mismatch(f"expected {name}, got {type(v).__qualname__} {_short(v)}") from None

    def owns(v: Any) -> bool:
        try:
            return (type(v), v) in by_python
        except TypeError:  # unhashable
            return False

    def st(o: Any, _t: Any = None) -> Any:
        try:
            return by_json[(type(o), o)]
        except (KeyError, TypeError):
            raise _Mismatch(f"expected {name}, got JSON {_kind(o)} {_short(o)}") from None

    plain = all(p is j for p, j in members)
    ok = ok_many = None
    if plain:
        allowed = frozenset(by_json)
        types_ = frozenset(t for t, _ in allowed)

        def ok(v: Any) -> bool:
            return type(v) in types_ and (type(v), v) in allowed

        def ok_many(xs: Iterable[Any]) -> bool:
            return set(map(type, xs)) <= types_ and set(zip(map(type, xs), xs, strict=True)) <= allowed

    return _Node(
        tp,
        name,
        frozenset(_json_scalar_kind(j) for _, j in members),
        un,
        st,
        owns,
        lambda defs: dict(schema),
        ok,
        ok_many,
        values=by_json,
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_json_scalar(value: Any, what: str) -> Any:
    if value is None or type(value) in (bool, int, str) or (type(value) is float and math.isfinite(value)):
        return value
    raise _Refusal(
        f"{what} has the value {_short(value)}, which has no exact JSON form",
        "use str, int, float, bool or None values",
    )


def _literal_node(tp: Any) -> _Node:
    members: list[tuple[Any, Any]] = []
    for value in typing.get_args(tp):
        if isinstance(value, enum.Enum):
            members.append((value, _check_json_scalar(value.value, f"member {value!r} in {type_name(tp)}")))
        else:
            members.append((value, _check_json_scalar(value, type_name(tp))))
    values = [j for _, j in members]
    schema = {"const": values[0]} if len(values) == 1 else {"enum": values}
    return _value_set_node(tp, type_name(tp), members, schema)


def _enum_node(tp: type[enum.Enum]) -> _Node:
    members = [(m, _check_json_scalar(m.value, f"enum {tp.__qualname__}.{m.name}")) for m in tp]
    if not members:
        raise _Refusal(f"enum {tp.__qualname__} has no members", "give the enum at least one member")
    if issubclass(tp, enum.Flag):
        raise _Refusal(
            f"flag enum {tp.__qualname__} can hold combinations that are not members",
            "store a set of a plain Enum instead: set[Permission]",
        )

    return _value_set_node(
        tp, tp.__qualname__, members, {"enum": [j for _, j in members], "title": tp.__qualname__}
    )


# --------------------------------------------------------------------------- containers


def _list_node(tp: Any, item: _Node, *, as_tuple: bool) -> _Node:
    py_type = tuple if as_tuple else list
    name = type_name(tp)
    eu, est, item_ok_many, item_json_many = item.un, item.st, item.ok_many, item.json_ok_many

    def un(v: Any, d: int = 0) -> list[Any]:
        if not isinstance(v, py_type):
            raise _mismatch(name, v)
        if item_ok_many is not None and item_ok_many(v):
            return v if type(v) is list else list(v)
        if d >= MAX_DEPTH:
            raise _too_deep()
        d += 1
        out = []
        append = out.append
        i = 0
        try:
            for i, x in enumerate(v):  # noqa: B007 - i names the failing element
                append(eu(x, d))
        except _Mismatch as m:
            m.push(f"[{i}]", v)
            raise
        return out

    def st(o: Any, _t: Any = None) -> Any:
        if type(o) is not list:
            raise _dec_mismatch("array", o)
        if item_json_many is not None and item_json_many(o):
            return tuple(o) if as_tuple else o
        out = []
        append = out.append
        i = 0
        try:
            for i, x in enumerate(o):  # noqa: B007 - i names the failing element
                append(est(x))
        except _Mismatch as m:
            m.push(f"[{i}]", o)
            raise
        return tuple(out) if as_tuple else out

    ok = ok_many = json_ok = json_ok_many = None
    if item_ok_many is not None and not as_tuple:

        def ok(v: Any) -> bool:
            return type(v) is list and item_ok_many(v)

        def ok_many(xs: Iterable[Any]) -> bool:
            return set(map(type, xs)) <= _LIST_ONLY and item_ok_many(list(chain.from_iterable(xs)))

    if item_json_many is not None and not as_tuple:

        def json_ok(o: Any) -> bool:
            return type(o) is list and item_json_many(o)

        def json_ok_many(xs: Iterable[Any]) -> bool:
            return set(map(type, xs)) <= _LIST_ONLY and item_json_many(list(chain.from_iterable(xs)))

    def owns(v: Any) -> bool:
        return isinstance(v, py_type)

    return _Node(
        tp,
        name,
        frozenset({"array"}),
        un,
        st,
        owns,
        lambda defs: {"type": "array", "items": item.schema(defs)},
        ok,
        ok_many,
        hashable=as_tuple and item.hashable,
        json_ok=json_ok,
        json_ok_many=json_ok_many,
    )


def _fixed_tuple_node(tp: Any, items: list[_Node]) -> _Node:
    name = type_name(tp)
    size = len(items)
    uns = [n.un for n in items]
    sts = [n.st for n in items]

    def un(v: Any, d: int = 0) -> list[Any]:
        if not isinstance(v, tuple):
            raise _mismatch(name, v)
        if len(v) != size:
            raise _Mismatch(f"expected {name} ({size} items), got {len(v)} items")
        if d >= MAX_DEPTH:
            raise _too_deep()
        d += 1
        out = []
        i = 0
        try:
            for i, (f, x) in enumerate(zip(uns, v, strict=True)):  # noqa: B007 - i names the failing element
                out.append(f(x, d))
        except _Mismatch as m:
            m.push(f"[{i}]", v)
            raise
        return out

    def st(o: Any, _t: Any = None) -> tuple[Any, ...]:
        if type(o) is not list:
            raise _dec_mismatch("array", o)
        if len(o) != size:
            raise _Mismatch(f"expected an array of {size} items for {name}, got {len(o)}")
        out = []
        i = 0
        try:
            for i, (f, x) in enumerate(zip(sts, o, strict=True)):  # noqa: B007 - i names the failing element
                out.append(f(x))
        except _Mismatch as m:
            m.push(f"[{i}]", o)
            raise
        return tuple(out)

    def owns(v: Any) -> bool:
        return isinstance(v, tuple)

    def schema(defs: _Defs) -> dict[str, Any]:
        return {
            "type": "array",
            "prefixItems": [n.schema(defs) for n in items],
            "items": False,
            "minItems": size,
            "maxItems": size,
        }

    return _Node(
        tp,
        name,
        frozenset({"array"}),
        un,
        st,
        owns,
        schema,
        hashable=all(n.hashable for n in items),
    )


def _canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_ORJSON_OPTIONS | orjson.OPT_SORT_KEYS)


def _set_node(tp: Any, item: _Node, py_type: type) -> _Node:
    name = type_name(tp)
    eu, est, item_json_many = item.un, item.st, item.json_ok_many

    def un(v: Any, d: int = 0) -> list[Any]:
        if not isinstance(v, py_type):
            raise _mismatch(name, v)
        if d >= MAX_DEPTH:
            raise _too_deep()
        d += 1
        out = []
        try:
            for x in v:
                out.append(eu(x, d))
        except _Mismatch as m:
            m.push("[*]", v)  # a set has no positions: "some element"
            raise
        # Sorted so that equal sets always give equal bytes.
        try:
            out.sort()
        except TypeError:
            out.sort(key=_canonical)
        return out

    def st(o: Any, _t: Any = None) -> Any:
        if type(o) is not list:
            raise _dec_mismatch("array", o)
        if item_json_many is not None and item_json_many(o):
            return py_type(o)
        i = 0
        out = []
        try:
            for i, x in enumerate(o):  # noqa: B007 - i names the failing element
                out.append(est(x))
        except _Mismatch as m:
            m.push(f"[{i}]", o)
            raise
        return py_type(out)

    def owns(v: Any) -> bool:
        return isinstance(v, py_type)

    return _Node(
        tp,
        name,
        frozenset({"array"}),
        un,
        st,
        owns,
        lambda defs: {"type": "array", "items": item.schema(defs), "uniqueItems": True},
        hashable=py_type is frozenset,
    )


def _dict_node(tp: Any, value: _Node) -> _Node:
    name = type_name(tp)
    vu, vst, value_ok_many, value_json_many = value.un, value.st, value.ok_many, value.json_ok_many
    str_only = frozenset({str})

    def un(v: Any, d: int = 0) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise _mismatch(name, v)
        if value_ok_many is not None and set(map(type, v)) <= str_only and value_ok_many(v.values()):
            return v if type(v) is dict else dict(v)
        if d >= MAX_DEPTH:
            raise _too_deep()
        d += 1
        out = {}
        k = None
        try:
            for k, x in v.items():
                if not isinstance(k, str):
                    raise _Mismatch(f"dict keys must be str, got {type(k).__qualname__} key {_short(k)}")
                out[str.__str__(k)] = vu(x, d)
        except _Mismatch as m:
            m.push(_key_segment(k) if isinstance(k, str) else f"[{_short(k)}]", v)
            raise
        return out

    def st(o: Any, _t: Any = None) -> dict[str, Any]:
        if type(o) is not dict:
            raise _dec_mismatch("object", o)
        if value_json_many is not None and value_json_many(o.values()):
            return o
        out = {}
        k = ""
        try:
            for k, x in o.items():
                out[k] = vst(x)
        except _Mismatch as m:
            m.push(_key_segment(k), o)
            raise
        return out

    ok = ok_many = json_ok = json_ok_many = None
    if value_json_many is not None:

        def json_ok(o: Any) -> bool:
            return type(o) is dict and value_json_many(o.values())

        def json_ok_many(xs: Iterable[Any]) -> bool:
            return set(map(type, xs)) <= _DICT_ONLY and value_json_many(
                list(chain.from_iterable(map(dict.values, xs)))
            )

    if value_ok_many is not None:

        def ok(v: Any) -> bool:
            return type(v) is dict and set(map(type, v)) <= str_only and value_ok_many(v.values())

        def ok_many(xs: Iterable[Any]) -> bool:
            return (
                set(map(type, xs)) <= _DICT_ONLY
                and set(map(type, chain.from_iterable(xs))) <= str_only
                and value_ok_many(list(chain.from_iterable(map(dict.values, xs))))
            )

    def owns(v: Any) -> bool:
        return isinstance(v, dict)

    return _Node(
        tp,
        name,
        frozenset({"object"}),
        un,
        st,
        owns,
        lambda defs: {"type": "object", "additionalProperties": value.schema(defs)},
        ok,
        ok_many,
        hashable=False,
        json_ok=json_ok,
        json_ok_many=json_ok_many,
    )


# --------------------------------------------------------------------------- unions


def _union_node(tp: Any, members: list[_Node]) -> _Node:
    name = type_name(tp)
    _check_union(name, members)
    # Value sets (Literal/Enum) are tried before general members of the same JSON kind.
    ordered = sorted(members, key=lambda n: n.values is None)
    has_int = any(n.tp is int for n in members)
    float_node = next((n for n in members if n.tp is float), None)
    owners = []
    for n in ordered:
        owns = n.owns
        if n is float_node and not has_int:
            # An int is a fine value for a float member when nothing else claims it.
            def owns(v: Any, _f: Callable[[Any], bool] = n.owns) -> bool:
                return _f(v) or (isinstance(v, int) and not isinstance(v, bool))

        owners.append((owns, n.un))

    def un(v: Any, d: int = 0) -> Any:
        for owns, f in owners:
            if owns(v):
                return f(v, d)
        raise _mismatch(name, v)

    # Structuring dispatches on the decoded JSON type, then on the exact value for value sets.
    by_json: dict[type, list[tuple[frozenset[Any] | None, Callable[..., Any]]]] = {}
    for n in ordered:
        if n.values is not None:
            per_type: dict[type, set[Any]] = {}
            for py, value in n.values:
                per_type.setdefault(py, set()).add(value)
            for py, accepted in per_type.items():
                by_json.setdefault(py, []).append((frozenset(accepted), n.st))
        elif "object" not in n.kinds:
            for py in _json_types(n):
                by_json.setdefault(py, []).append((None, n.st))
    if float_node is not None and not has_int:
        by_json.setdefault(int, []).append((None, float_node.st))
    object_st = _object_dispatch(name, members)
    if object_st is not None:
        by_json[dict] = [(None, object_st)]

    def st(o: Any, _t: Any = None) -> Any:
        for accepted, f in by_json.get(type(o), ()):
            if accepted is None or o in accepted:
                return f(o)
        raise _Mismatch(f"expected {name}, got JSON {_kind(o)}")

    plain = all(n.tp in _PLAIN_SCALARS for n in members)
    oks = [n.ok for n in members]
    ok = ok_many = None
    if None not in oks:

        def ok(v: Any) -> bool:
            return any(f(v) for f in oks)  # type: ignore[misc]

        ok_many = _plain_scalars_many(frozenset(n.tp for n in members)) if plain else _many_from_one(ok)
    json_oks = [n.json_ok for n in members]
    json_ok = json_ok_many = None
    if None not in json_oks:

        def json_ok(o: Any) -> bool:
            return any(f(o) for f in json_oks)  # type: ignore[misc]

        json_ok_many = _types_within(frozenset(n.tp for n in members)) if plain else _many_from_one(json_ok)

    def owns_any(v: Any) -> bool:
        return any(o(v) for o, _ in owners)

    return _Node(
        tp,
        name,
        frozenset().union(*(n.kinds for n in members)),
        un,
        st,
        owns_any,
        lambda defs: {"anyOf": [n.schema(defs) for n in members]},
        ok,
        ok_many,
        hashable=all(n.hashable for n in members),
        json_ok=json_ok,
        json_ok_many=json_ok_many,
    )


_PLAIN_SCALARS = (_NoneType, bool, int, float, str)


def _plain_scalars_many(allowed: frozenset[type]) -> Callable[[Iterable[Any]], bool]:
    """Bulk test for a union of plain scalars (``int | str``, ``float | None``) without a call per item."""

    def many(xs: Iterable[Any]) -> bool:
        present = set(map(type, xs))
        if not present <= allowed:
            return False
        if int in present:
            ints = [x for x in xs if type(x) is int]
            if min(ints) < INT_MIN or max(ints) > INT_MAX:
                return False
        return float not in present or _finite_floats([x for x in xs if type(x) is float])

    return many


_KIND_TYPES: dict[str, tuple[type, ...]] = {
    "null": (_NoneType,),
    "boolean": (bool,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
}


def _json_types(node: _Node) -> list[type]:
    """The decoded JSON types a general (non-object) member structures from."""
    if node.tp is float:
        return [float]
    if node.tp is int:
        return [int]
    return [py for kind in node.kinds for py in _KIND_TYPES[kind]]


def _check_union(name: str, members: list[_Node]) -> None:
    """Refuse unions whose members a stored JSON value could not tell apart."""
    seen_values: dict[tuple[type, Any], _Node] = {}
    for n in members:
        for pair, value in (n.values or {}).items():
            other = seen_values.setdefault(pair, n)
            known = other.values[pair]  # type: ignore[index]
            if other is not n and not (type(known) is type(value) and known == value):
                raise _Refusal(
                    f"{other.name} and {n.name} in {name} both store the value {pair[1]!r}, so a restore "
                    "could not tell which one was meant",
                    "give the members distinct values, or drop one of them",
                )
    objects = [n for n in members if "object" in n.kinds]
    if len(objects) > 1 and not all(_is_class(n.tp) for n in objects):
        raise _Refusal(
            f"{name} mixes a dict with other JSON objects, which a restore could not tell apart",
            "use a single dict type, or only attrs classes / dataclasses, in the union",
        )
    for kind in ("boolean", "number", "string", "array"):
        general = [n for n in members if kind in n.kinds and n.values is None]
        enums = [n for n in members if kind in n.kinds and _is_enum(n.tp)]
        if kind == "number" and sorted(n.name for n in general) == ["float", "int"]:
            general = []  # JSON keeps 3 and 3.0 apart
        if len(general) > 1:
            raise _Refusal(
                f"{' and '.join(n.name for n in general)} in {name} are all stored as JSON {kind}s, so a "
                "restore could not tell which one was meant",
                "keep one of them, or wrap each in its own attrs class with a distinguishing field",
            )
        if general and enums:
            raise _Refusal(
                f"{enums[0].name} and {general[0].name} in {name} are both stored as JSON {kind}s, so a "
                f"stored {general[0].name} could come back as {enums[0].name}",
                "drop one of them, or use a Literal for the fixed values",
            )


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _object_dispatch(name: str, members: list[_Node]) -> Callable[..., Any] | None:
    objects = [n for n in members if "object" in n.kinds]
    if len(objects) < 2:
        return objects[0].st if objects else None
    by_class = {n.tp: n.st for n in objects}
    try:
        pick = create_default_dis_func(converter, *by_class, overrides={})
    except (TypeError, ValueError) as exc:
        raise _Refusal(
            f"the classes in {name} cannot be told apart from their stored fields ({exc}); no class name "
            "is stored",
            "give each class a required field no other member has, or a common Literal tag field "
            "(kind: Literal['a'] = 'a') with a different value per class",
        ) from None

    def st(o: Any, _t: Any = None) -> Any:
        try:
            cls = pick(o)
        except (KeyError, ValueError, TypeError):
            cls = None
        structure = by_class.get(cls)
        if structure is None:
            raise _Mismatch(f"the stored object matches no member of {name}")
        return structure(o)

    return st


# --------------------------------------------------------------------------- classes


def _is_class(tp: Any) -> bool:
    return isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp))


def _class_fields(cls: type) -> list[tuple[str, Any, bool]]:
    """(name, resolved type, has default) of every field the class's __init__ takes."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise _Refusal(
            f"the field annotations of {cls.__qualname__} cannot be resolved ({exc})",
            "make every name used in its annotations importable from its module",
        ) from None
    out = []
    if attrs.has(cls):
        for a in attrs.fields(cls):
            if a.init:
                out.append((a.name, hints.get(a.name, a.type), a.default is not attrs.NOTHING))
    else:
        for f in dataclasses.fields(cls):
            if f.init:
                has_default = (
                    f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
                )
                out.append((f.name, hints.get(f.name, f.type), has_default))
    return out


#: Field names make_dict_structure_fn takes as its own arguments; such fields use the converter's hook.
_CATTRS_PARAMETERS = frozenset({"cl", "converter"})


def _class_node(cls: type, node: _Node) -> None:
    """Fill ``node`` (already memoised, so recursive classes can refer to it) for an attrs class or dataclass."""
    if getattr(cls, "__parameters__", ()):
        raise _Refusal(
            f"{cls.__qualname__} is generic",
            "declare a concrete class (generic attrs classes / dataclasses are not supported)",
        )
    fields = []
    for field_name, field_type, has_default in _class_fields(cls):
        try:
            fields.append((field_name, _compile(field_type), has_default))
        except _Refusal as r:
            raise _Refusal(f"field {cls.__qualname__}.{field_name}: {r.problem}", r.fix) from None
    name = cls.__qualname__
    plan = [(f, n.un) for f, n, _ in fields]
    generated = make_dict_structure_fn(
        cls,
        converter,
        _cattrs_forbid_extra_keys=True,
        _cattrs_detailed_validation=True,
        **{f: override(struct_hook=n.st) for f, n, _ in fields if f not in _CATTRS_PARAMETERS},
    )

    def un(v: Any, d: int = 0) -> dict[str, Any]:
        if type(v) is not cls:
            raise _mismatch(name, v)
        if d >= MAX_DEPTH:
            raise _too_deep()
        d += 1
        out = {}
        f = ""
        try:
            for f, fu in plan:
                out[f] = fu(getattr(v, f), d)
        except _Mismatch as m:
            m.push("." + f, v)
            raise
        return out

    def st(o: Any, _t: Any = None) -> Any:
        if type(o) is not dict:
            raise _dec_mismatch(f"object for {name}", o)
        try:
            return generated(o, cls)
        except ClassValidationError as exc:
            raise _from_class_error(name, exc) from None

    def owns(v: Any) -> bool:
        return type(v) is cls

    def schema(defs: _Defs) -> dict[str, Any]:
        return defs.ref(
            cls,
            lambda: {
                "title": name,
                "type": "object",
                "properties": {f: n.schema(defs) for f, n, _ in fields},
                "required": [f for f, _, has_default in fields if not has_default],
                "additionalProperties": False,
            },
        )

    node.un, node.st, node.owns, node.schema = un, st, owns, schema
    node.hashable = getattr(cls, "__hash__", None) is not None
    node.kinds = frozenset({"object"})


def _from_class_error(name: str, exc: ClassValidationError) -> _Mismatch:
    """The first failing field of a cattrs class error, as a path and a problem."""
    sub = exc.exceptions[0]
    if isinstance(sub, ForbiddenExtraKeysError):
        return _Mismatch(f"unexpected field(s) {', '.join(sorted(map(repr, sub.extra_fields)))} for {name}")
    # Notes pile up on one exception as it passes through nested classes: the last is ours.
    notes = [n for n in getattr(sub, "__notes__", ()) if isinstance(n, AttributeValidationNote)]
    if not notes:
        return _Mismatch(f"{name}(...) refused the stored fields: {sub!r}")
    if isinstance(sub, _Mismatch):
        mismatch = sub
    elif isinstance(sub, CodecError):  # raised through the converter's hook
        mismatch = _Mismatch(sub.problem)
        if sub.path:
            mismatch.push(sub.path, None)
    elif isinstance(sub, KeyError):
        mismatch = _Mismatch(f"missing required field of {name}")
    else:
        mismatch = _Mismatch(f"{type(sub).__name__}: {sub}")
    mismatch.push("." + notes[-1].name, None)
    return mismatch


# --------------------------------------------------------------------------- compilation


_lock = threading.RLock()
_memo: dict[Any, _Node] = {}

#: One converter for the package: its hooks are the strict ones compiled here, so
#: ``converter.structure(obj, T)`` / ``converter.unstructure(v, T)`` behave exactly like a codec.
converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)


def _compile(tp: Any) -> _Node:
    try:
        cached = _memo.get(tp)
    except TypeError:  # unhashable metadata, e.g. inside Annotated
        cached = None
    if cached is not None:
        if cached.un is None:  # a recursive class still being compiled: defer the lookup
            return _Node(
                tp,
                cached.name,
                frozenset({"object"}),
                lambda v, d=0: cached.un(v, d),
                lambda o, _t=None: cached.st(o),
                lambda v: cached.owns(v),
                lambda defs: cached.schema(defs),
                hashable=getattr(tp, "__hash__", None) is not None,
            )
        return cached
    node = _build(tp)
    with contextlib.suppress(TypeError):  # unhashable types are simply not memoised
        _memo[tp] = node
    return node


def _build(tp: Any) -> _Node:
    if tp is None:
        tp = _NoneType
    if isinstance(tp, (str, typing.ForwardRef)):
        raise _Refusal(
            f"unresolved forward reference {tp!r}", "make the name importable where the type is declared"
        )
    if tp in (typing.Any, object):
        raise _Refusal(
            f"{type_name(tp)} says nothing about the stored shape, so it can be neither checked nor restored",
            "declare the concrete type, e.g. int, list[str] or an attrs class",
        )
    if isinstance(tp, typing.TypeVar):
        raise _Refusal(f"type variable {tp} is not a concrete type", "declare the concrete type")
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # typing.NewType
        return _compile(supertype)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _compile(args[0])
    if origin in (typing.Union, types.UnionType):
        return _union_node(tp, [_compile(a) for a in args])
    if origin is typing.Literal:
        return _literal_node(tp)
    factory = _SCALAR_FACTORIES.get(tp)
    if factory is not None:
        return factory()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_node(tp)
    if origin is list or tp is list:
        return _list_node(tp, _item(tp, args, "list", "list[int]"), as_tuple=False)
    if origin is tuple or tp is tuple:
        if tp is tuple:
            raise _Refusal("bare tuple has no item types", "write tuple[int, ...] or tuple[int, str]")
        if len(args) == 2 and args[1] is Ellipsis:
            return _list_node(tp, _compile(args[0]), as_tuple=True)
        return _fixed_tuple_node(tp, [_compile(a) for a in args])
    if origin in (set, frozenset) or tp in (set, frozenset):
        py_type = origin or tp
        item = _item(tp, args, py_type.__name__, f"{py_type.__name__}[str]")
        if not item.hashable:
            raise _Refusal(
                f"{item.name} in {type_name(tp)} is not hashable, so it cannot be a set element",
                "use a tuple, frozenset or frozen attrs class as the element type",
            )
        return _set_node(tp, item, py_type)
    if origin is dict or tp is dict:
        if not args:
            raise _Refusal("bare dict has no key and value types", "write dict[str, int]")
        if args[0] is not str:
            raise _Refusal(
                f"dict key type {type_name(args[0])} in {type_name(tp)}: JSON object keys are strings",
                "use dict[str, ...] (convert keys to str yourself), or a list of pairs",
            )
        return _dict_node(tp, _compile(args[1]))
    if _is_class(tp):
        node = _Node(tp, tp.__qualname__)
        _memo[tp] = node
        try:
            _class_node(tp, node)
        except BaseException:
            del _memo[tp]
            raise
        return node
    if origin is not None and _is_class(origin):
        raise _Refusal(f"{type_name(tp)} is a parametrised generic class", "declare a concrete class")
    raise _Refusal(
        f"{type_name(tp)} has no JSON form",
        "use None, bool, int, float, str, list, tuple, set, dict[str, ...], Optional/Union, Literal, Enum, "
        "datetime/date/time, UUID, Decimal, bytes, or an attrs class / dataclass of those, "
        'or declare codec="pickle"',
    )


def _item(tp: Any, args: tuple[Any, ...], what: str, example: str) -> _Node:
    if not args:
        raise _Refusal(f"bare {what} has no item type", f"write e.g. {example}")
    return _compile(args[0])


def _unsupported(site: str, refusal: _Refusal, tp: Any) -> UnsupportedTypeError:
    whole = type_name(tp)
    problem = refusal.problem if whole in refusal.problem else f"{refusal.problem} (declared type {whole})"
    return UnsupportedTypeError(site, problem, refusal.fix)


def _compile_top(tp: Any, site: str) -> _Node:
    """Compile under the lock; a refusal leaves no half-built (e.g. recursive) nodes behind."""
    with _lock:
        before = set(_memo)
        try:
            return _compile(tp)
        except _Refusal as refusal:
            for added in set(_memo) - before:
                del _memo[added]
            raise _unsupported(site, refusal, tp) from None


def compile_type(tp: Any, *, key: str, site: str = "") -> TypeCodec:
    """Analyse ``tp`` once and return its codec; ``UnsupportedTypeError`` names the part that cannot be stored."""
    return TypeCodec(key, tp, _compile_top(tp, site))


# --------------------------------------------------------------------------- codecs


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


# --------------------------------------------------------------------------- converter

_CONVERTER_KEY = "(converter)"


def _structure_hook_factory(tp: Any) -> Callable[..., Any]:
    codec = compile_type(tp, key=_CONVERTER_KEY, site="cattrs converter")
    return lambda obj, _t=None: codec.structure(obj)


def _unstructure_hook_factory(tp: Any) -> Callable[[Any], Any]:
    return compile_type(tp, key=_CONVERTER_KEY, site="cattrs converter").unstructure


converter.register_structure_hook_factory(lambda tp: True, _structure_hook_factory)
converter.register_unstructure_hook_factory(lambda tp: True, _unstructure_hook_factory)
# cattrs dispatches these classes directly (and leniently: int("3")) before any factory.
for _tp in (_NoneType, bool, int, float, str, bytes):
    converter.register_structure_hook(_tp, _structure_hook_factory(_tp))
    converter.register_unstructure_hook(_tp, _unstructure_hook_factory(_tp))
