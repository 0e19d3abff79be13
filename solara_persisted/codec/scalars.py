"""None, bool, int, float and str, and the types stored as a JSON string (datetimes, UUID, Decimal, bytes)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable, Collection, Iterable
from typing import Any

from .nodes import (
    INT_MAX,
    INT_MIN,
    Budget,
    Mismatch,
    Node,
    NoneType,
    finite_floats,
    json_mismatch,
    short_repr,
    type_mismatch,
    types_within,
)

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _four_each(batch: Collection[Any]) -> int:
    return 4 * len(batch)  # null, true, false


def _three_each(batch: Collection[Any]) -> int:
    return 3 * len(batch)  # orjson writes no finite float shorter than 0.0


def _str_floor(value: str) -> int:
    return len(value) + 2  # at least a byte a character, and the quotes


def _strs_floor(batch: Collection[str]) -> int:
    return sum(map(len, batch)) + 2 * len(batch)


def _none_node() -> Node:
    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> None:
        if value is not None:
            raise type_mismatch("None", value)

    def structure(obj: Any, _type: Any = None) -> None:
        if obj is not None:
            raise json_mismatch("null", obj)

    def is_none(value: Any) -> bool:
        return value is None

    return Node(
        NoneType,
        "None",
        frozenset({"null"}),
        unstructure,
        structure,
        is_none,
        lambda defs: {"type": "null"},
        is_none,
        types_within(frozenset({NoneType})),
        values={(NoneType, None): None},
        size=4,
        floor_many=_four_each,
    )


def _bool_node() -> Node:
    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> bool:
        if type(value) is not bool:
            raise type_mismatch("bool", value)
        return value

    def structure(obj: Any, _type: Any = None) -> bool:
        if type(obj) is not bool:
            raise json_mismatch("boolean", obj)
        return obj

    def is_bool(value: Any) -> bool:
        return type(value) is bool

    all_bools = types_within(frozenset({bool}))
    return Node(
        bool,
        "bool",
        frozenset({"boolean"}),
        unstructure,
        structure,
        is_bool,
        lambda defs: {"type": "boolean"},
        is_bool,
        all_bools,
        size=4,
        floor_many=_four_each,
    )


def _int_node() -> Node:
    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT_MIN <= value <= INT_MAX:
                raise Mismatch(
                    f"{short_repr(value)} is outside the 64-bit integer range JSON readers agree on; store a Decimal or str"
                )
            return value if type(value) is int else int(value)
        raise type_mismatch("int", value)

    def structure(obj: Any, _type: Any = None) -> int:
        if type(obj) is not int:
            raise json_mismatch("integer", obj)
        return obj

    def is_int(value: Any) -> bool:
        return type(value) is int and INT_MIN <= value <= INT_MAX

    def owns(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def all_ints(batch: Iterable[Any]) -> bool:
        return (
            set(map(type, batch)) <= {int}
            and min(batch, default=0) >= INT_MIN
            and max(batch, default=0) <= INT_MAX
        )

    def is_json_int(obj: Any) -> bool:
        return type(obj) is int

    return Node(
        int,
        "int",
        frozenset({"number"}),
        unstructure,
        structure,
        owns,
        lambda defs: {"type": "integer"},
        is_int,
        all_ints,
        json_native=is_json_int,
        json_native_many=types_within(frozenset({int})),
    )


def _float_node() -> Node:
    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> float:
        if isinstance(value, float):
            if value - value != 0.0:
                raise Mismatch(f"{value!r} is not a finite number; JSON has no NaN or infinity")
            return float(value)
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise Mismatch("integer too large for a float") from None
        raise type_mismatch("float", value)

    def structure(obj: Any, _type: Any = None) -> float:
        if type(obj) is float:
            if obj - obj != 0.0:
                raise Mismatch("number out of float range")
            return obj
        if type(obj) is int:
            try:
                return float(obj)
            except OverflowError:
                raise Mismatch("integer too large for a float") from None
        raise json_mismatch("number", obj)

    def is_finite_float(value: Any) -> bool:
        return type(value) is float and value - value == 0.0

    def is_json_float(obj: Any) -> bool:
        return type(obj) is float

    def owns(value: Any) -> bool:
        return isinstance(value, float)

    return Node(
        float,
        "float",
        frozenset({"number"}),
        unstructure,
        structure,
        owns,
        lambda defs: {"type": "number"},
        is_finite_float,
        finite_floats,
        json_native=is_json_float,
        json_native_many=types_within(frozenset({float})),
        size=3,
        floor_many=_three_each,
    )


def _str_node() -> Node:
    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> str:
        if type(value) is not str:
            if not isinstance(value, str):
                raise type_mismatch("str", value)
            value = str.__str__(value)
        if budget is not None:  # inline: this runs for every string of a capped encode
            budget.left -= len(value)  # beyond the quotes
            if budget.left < 0:
                raise budget.over()
        return value

    def structure(obj: Any, _type: Any = None) -> str:
        if type(obj) is not str:
            raise json_mismatch("string", obj)
        return obj

    def is_str(value: Any) -> bool:
        return type(value) is str

    def owns(value: Any) -> bool:
        return isinstance(value, str)

    all_strs = types_within(frozenset({str}))
    return Node(
        str,
        "str",
        frozenset({"string"}),
        unstructure,
        structure,
        owns,
        lambda defs: {"type": "string"},
        is_str,
        all_strs,
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
) -> Node:
    """A type stored as a JSON string (datetimes, UUID, Decimal, bytes).

    ``size`` is the shortest JSON string of the type. For a type whose text has no bound
    (Decimal, bytes) a capped encode takes the rest of its length: from ``text_length`` before
    making the text where it can (a big ``bytes`` is refused before its base64 is built).
    """
    name = tp.__qualname__
    unbounded = tp in (decimal.Decimal, bytes)

    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> str:
        if not owns(value):
            raise type_mismatch(name, value)
        if budget is None or not unbounded:
            return to_text(value)
        if text_length is not None:
            budget.take(text_length(value) + 2 - size)
            return to_text(value)
        text = to_text(value)
        budget.left -= len(text) + 2 - size
        if budget.left < 0:
            raise budget.over()
        return text

    def structure(obj: Any, _type: Any = None) -> Any:
        if type(obj) is not str:
            raise json_mismatch(f"a string holding {what}", obj)
        try:
            return from_text(obj)
        except (ValueError, ArithmeticError, binascii.Error):
            raise Mismatch(f"{obj[:64]!r} is not {what}") from None

    return Node(
        tp, name, frozenset({"string"}), unstructure, structure, owns, lambda defs: dict(schema), size=size
    )


def _iso_text(value: dt.datetime | dt.time) -> str:
    offset = value.utcoffset()
    if offset is not None and offset.microseconds:
        # Python's fromisoformat misreads some such offsets (e.g. +00:00:00.000001 as UTC).
        raise Mismatch(f"the timezone offset {offset} has a fraction of a second; use whole seconds")
    return value.isoformat()


def _is_datetime(value: Any) -> bool:
    return isinstance(value, dt.datetime)


def _is_date(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _is_time(value: Any) -> bool:
    return isinstance(value, dt.time)


def _is_uuid(value: Any) -> bool:
    return isinstance(value, uuid.UUID)


def _is_bytes(value: Any) -> bool:
    return isinstance(value, bytes)


def _is_decimal(value: Any) -> bool:
    return isinstance(value, decimal.Decimal)


def _decimal_text(value: decimal.Decimal) -> str:
    if not value.is_finite():
        raise Mismatch(f"Decimal {value} is not finite; only finite decimals are stored")
    return str(value)


def _decimal_from_text(text: str) -> decimal.Decimal:
    if not _DECIMAL.fullmatch(text):
        raise ValueError(text)
    return decimal.Decimal(text)


def _base64_length(value: bytes) -> int:
    return 4 * ((len(value) + 2) // 3)


def _bytes_from_text(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


_ISO_DATETIME = (
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"
)
_ISO_TIME = r"^\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"

SCALAR_FACTORIES: dict[Any, Callable[[], Node]] = {
    NoneType: _none_node,
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
        lambda value: base64.b64encode(value).decode("ascii"),
        _bytes_from_text,
        {"type": "string", "contentEncoding": "base64"},
        _is_bytes,
        "base64 data",
        len('""'),
        _base64_length,
    ),
}
