"""Literal and Enum: a closed set of values, each stored as its JSON scalar and restored by exact lookup."""

from __future__ import annotations

import enum
import math
import typing
from collections.abc import Iterable
from typing import Any

import orjson

from .nodes import _Budget, _kind, _Mismatch, _Node, _Refusal, _short, type_name


def _json_scalar_kind(value: Any) -> str:
    kind = _kind(value)
    return "number" if kind == "integer" else kind


def _value_set_node(tp: Any, name: str, members: list[tuple[Any, Any]], schema: dict[str, Any]) -> _Node:
    """Literal and Enum types: a closed set of (python value, JSON value) pairs.

    Lookups are keyed by (type, value) so that True never stands in for 1, nor 1 for an IntEnum.
    """
    by_json = {(type(j), j): p for p, j in members}
    by_python = {(type(p), p): j for p, j in members}

    def un(v: Any, d: int = 0, b: _Budget | None = None) -> Any:
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
        size=min(len(orjson.dumps(j)) for _, j in members),
    )


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
