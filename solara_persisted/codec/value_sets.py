"""Literal and Enum: a closed set of values, each stored as its JSON scalar and restored by exact lookup."""

from __future__ import annotations

import enum
import math
import typing
from collections.abc import Iterable
from typing import Any

import orjson

from .nodes import Budget, Mismatch, Node, Refusal, json_kind, short_repr, type_name


def _json_scalar_kind(value: Any) -> str:
    kind = json_kind(value)
    return "number" if kind == "integer" else kind


def _value_set_node(tp: Any, name: str, members: list[tuple[Any, Any]], schema: dict[str, Any]) -> Node:
    """Literal and Enum types: a closed set of (python value, JSON value) pairs.

    Lookups are keyed by (type, value) so that True never stands in for 1, nor 1 for an IntEnum.
    """
    by_json = {(type(json_value), json_value): value for value, json_value in members}
    by_python = {(type(value), value): json_value for value, json_value in members}

    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> Any:
        try:
            return by_python[(type(value), value)]
        except (KeyError, TypeError):
            raise Mismatch(f"expected {name}, got {type(value).__qualname__} {short_repr(value)}") from None

    def owns(value: Any) -> bool:
        try:
            return (type(value), value) in by_python
        except TypeError:  # unhashable
            return False

    def structure(obj: Any, _type: Any = None) -> Any:
        try:
            return by_json[(type(obj), obj)]
        except (KeyError, TypeError):
            raise Mismatch(f"expected {name}, got JSON {json_kind(obj)} {short_repr(obj)}") from None

    plain = all(value is json_value for value, json_value in members)
    native = native_many = None
    if plain:
        allowed = frozenset(by_json)
        allowed_types = frozenset(value_type for value_type, _ in allowed)

        def native(value: Any) -> bool:
            return type(value) in allowed_types and (type(value), value) in allowed

        def native_many(batch: Iterable[Any]) -> bool:
            return (
                set(map(type, batch)) <= allowed_types
                and set(zip(map(type, batch), batch, strict=True)) <= allowed
            )

    return Node(
        tp,
        name,
        frozenset(_json_scalar_kind(json_value) for _, json_value in members),
        unstructure,
        structure,
        owns,
        lambda defs: dict(schema),
        native,
        native_many,
        values=by_json,
        size=min(len(orjson.dumps(json_value)) for _, json_value in members),
    )


def _check_json_scalar(value: Any, what: str) -> Any:
    if value is None or type(value) in (bool, int, str) or (type(value) is float and math.isfinite(value)):
        return value
    raise Refusal(
        f"{what} has the value {short_repr(value)}, which has no exact JSON form",
        "use str, int, float, bool or None values",
    )


def literal_node(tp: Any) -> Node:
    members: list[tuple[Any, Any]] = []
    for value in typing.get_args(tp):
        if isinstance(value, enum.Enum):
            members.append((value, _check_json_scalar(value.value, f"member {value!r} in {type_name(tp)}")))
        else:
            members.append((value, _check_json_scalar(value, type_name(tp))))
    values = [json_value for _, json_value in members]
    schema = {"const": values[0]} if len(values) == 1 else {"enum": values}
    return _value_set_node(tp, type_name(tp), members, schema)


def enum_node(tp: type[enum.Enum]) -> Node:
    members = [
        (member, _check_json_scalar(member.value, f"enum {tp.__qualname__}.{member.name}")) for member in tp
    ]
    if not members:
        raise Refusal(f"enum {tp.__qualname__} has no members", "give the enum at least one member")
    if issubclass(tp, enum.Flag):
        raise Refusal(
            f"flag enum {tp.__qualname__} can hold combinations that are not members",
            "store a set of a plain Enum instead: set[Permission]",
        )

    return _value_set_node(
        tp,
        tp.__qualname__,
        members,
        {"enum": [json_value for _, json_value in members], "title": tp.__qualname__},
    )
