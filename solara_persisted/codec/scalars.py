"""None, bool, int, float and str, and the types stored as a JSON string (datetimes, UUID, Decimal, bytes)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import math
import re
import uuid
from collections.abc import Callable, Collection, Iterable
from typing import Any

from .nodes import (
    INT_MAX,
    INT_MIN,
    _Budget,
    _dec_mismatch,
    _Mismatch,
    _mismatch,
    _Node,
    _NoneType,
    _short,
    _types_within,
)

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _four_each(xs: Collection[Any]) -> int:
    return 4 * len(xs)  # null, true, false


def _three_each(xs: Collection[Any]) -> int:
    return 3 * len(xs)  # orjson writes no finite float shorter than 0.0


def _str_floor(v: str) -> int:
    return len(v) + 2  # at least a byte a character, and the quotes


def _strs_floor(xs: Collection[str]) -> int:
    return sum(map(len, xs)) + 2 * len(xs)


def _none_node() -> _Node:
    def un(v: Any, d: int = 0, b: _Budget | None = None) -> None:
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
        size=4,
        floor_many=_four_each,
    )


def _bool_node() -> _Node:
    def un(v: Any, d: int = 0, b: _Budget | None = None) -> bool:
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
        size=4,
        floor_many=_four_each,
    )


def _int_node() -> _Node:
    def un(v: Any, d: int = 0, b: _Budget | None = None) -> int:
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
    def un(v: Any, d: int = 0, b: _Budget | None = None) -> float:
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
        size=3,
        floor_many=_three_each,
    )


def _str_node() -> _Node:
    def un(v: Any, d: int = 0, b: _Budget | None = None) -> str:
        if type(v) is not str:
            if not isinstance(v, str):
                raise _mismatch("str", v)
            v = str.__str__(v)
        if b is not None:  # inline: this runs for every string of a capped encode
            b.left -= len(v)  # beyond the quotes
            if b.left < 0:
                raise b.over()
        return v

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
        size=2,
        floor=_str_floor,
        floor_many=_strs_floor,
    )


def _string_form_node(
    tp: type,
    to_text: Callable[[Any], str],
    from_text: Callable[[str], Any],
    schema: dict[str, Any],
    owns: Callable[[Any], bool],
    what: str,
    size: int,
    text_length: Callable[[Any], int] | None = None,
) -> _Node:
    """A type stored as a JSON string (datetimes, UUID, Decimal, bytes).

    ``size`` is the shortest JSON string of the type. For a type whose text has no bound
    (Decimal, bytes) a capped encode takes the rest of its length: from ``text_length`` before
    making the text where it can (a big ``bytes`` is refused before its base64 is built).
    """
    name = tp.__qualname__
    unbounded = tp in (decimal.Decimal, bytes)

    def un(v: Any, d: int = 0, b: _Budget | None = None) -> str:
        if not owns(v):
            raise _mismatch(name, v)
        if b is None or not unbounded:
            return to_text(v)
        if text_length is not None:
            b.take(text_length(v) + 2 - size)
            return to_text(v)
        text = to_text(v)
        b.left -= len(text) + 2 - size
        if b.left < 0:
            raise b.over()
        return text

    def st(o: Any, _t: Any = None) -> Any:
        if type(o) is not str:
            raise _dec_mismatch(f"a string holding {what}", o)
        try:
            return from_text(o)
        except (ValueError, ArithmeticError, binascii.Error):
            raise _Mismatch(f"{o[:64]!r} is not {what}") from None

    return _Node(tp, name, frozenset({"string"}), un, st, owns, lambda defs: dict(schema), size=size)


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


def _base64_length(v: bytes) -> int:
    return 4 * ((len(v) + 2) // 3)


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
        len('"2024-01-01T00:00:00"'),
    ),
    dt.date: lambda: _string_form_node(
        dt.date,
        dt.date.isoformat,
        dt.date.fromisoformat,
        {"type": "string", "format": "date"},
        _is_date,
        "an ISO 8601 date",
        len('"2024-01-01"'),
    ),
    dt.time: lambda: _string_form_node(
        dt.time,
        _iso_text,
        dt.time.fromisoformat,
        {"type": "string", "pattern": _ISO_TIME},
        _is_time,
        "an ISO 8601 time",
        len('"00:00:00"'),
    ),
    uuid.UUID: lambda: _string_form_node(
        uuid.UUID, str, uuid.UUID, {"type": "string", "format": "uuid"}, _is_uuid, "a UUID", 38
    ),
    decimal.Decimal: lambda: _string_form_node(
        decimal.Decimal,
        _decimal_text,
        _decimal_from_text,
        {"type": "string", "pattern": "^" + _DECIMAL.pattern + "$"},
        _is_decimal,
        "a decimal number",
        len('"0"'),
    ),
    bytes: lambda: _string_form_node(
        bytes,
        lambda v: base64.b64encode(v).decode("ascii"),
        _bytes_from_text,
        {"type": "string", "contentEncoding": "base64"},
        _is_bytes,
        "base64 data",
        len('""'),
        _base64_length,
    ),
}
