"""Unions: checked to be tellable apart from stored JSON, then dispatched on the JSON type and value."""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable
from typing import Any

from cattrs.disambiguators import create_default_dis_func

from .classes import _is_class, converter
from .nodes import (
    INT_MAX,
    INT_MIN,
    _Budget,
    _deepest,
    _kind,
    _many_from_one,
    _Mismatch,
    _mismatch,
    _Node,
    _NoneType,
    _Refusal,
    _types_within,
    type_name,
)
from .scalars import _finite_floats


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

    def un(v: Any, d: int = 0, b: _Budget | None = None) -> Any:
        for owns, f in owners:
            if owns(v):
                return f(v, d, b)
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
    floor: Callable[[Any], int] | None = None
    floor_many: Callable[[Collection[Any]], int] = _plain_scalars_floor if plain else len
    if None not in oks:

        def ok(v: Any) -> bool:
            return any(f(v) for f in oks)  # type: ignore[misc]

        ok_many = _plain_scalars_many(frozenset(n.tp for n in members)) if plain else _many_from_one(ok)
        sized = [(n.ok, n.floor) for n in members if n.floor is not None]
        if sized:

            def floor(v: Any) -> int:
                for member_ok, member_floor in sized:
                    if member_ok(v):  # type: ignore[misc]
                        return member_floor(v)
                return 1

            def floor_each(xs: Collection[Any]) -> int:
                return sum(map(floor, xs))

            if not plain:
                floor_many = floor_each
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
        size=min(n.size for n in members),
        floor=floor,
        floor_many=floor_many,
        depth=_deepest(n.depth for n in members),
    )


_PLAIN_SCALARS = (_NoneType, bool, int, float, str)


def _plain_scalars_floor(xs: Collection[Any]) -> int:
    """A byte per item, and the quotes and characters of the strings among them."""
    strs = [*filter(str.__instancecheck__, xs)]
    return len(xs) + sum(map(len, strs)) + len(strs)


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
