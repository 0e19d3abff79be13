"""Unions: checked to be tellable apart from stored JSON, then dispatched on the JSON type and value."""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable
from typing import Any

import cattrs
from cattrs.disambiguators import create_default_dis_func

from .nodes import (
    INT_MAX,
    INT_MIN,
    Budget,
    Mismatch,
    Node,
    NoneType,
    Refusal,
    deepest,
    finite_floats,
    is_class,
    json_kind,
    many_from_one,
    type_mismatch,
    type_name,
    types_within,
)


def union_node(tp: Any, members: list[Node], converter: cattrs.Converter) -> Node:
    """The node of a union; ``converter`` tells member classes apart by their fields, as no class name is stored."""
    name = type_name(tp)
    _check_union(name, members)
    # Value sets (Literal/Enum) are tried before general members of the same JSON kind.
    ordered = sorted(members, key=lambda member: member.values is None)
    has_int = any(member.tp is int for member in members)
    float_node = next((member for member in members if member.tp is float), None)
    owners = []
    for member in ordered:
        owns = member.owns
        if member is float_node and not has_int:
            # An int is a fine value for a float member when nothing else claims it.
            def owns(value: Any, float_owns: Callable[[Any], bool] = member.owns) -> bool:
                return float_owns(value) or (isinstance(value, int) and not isinstance(value, bool))

        owners.append((owns, member.unstructure))

    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> Any:
        for owns, member_unstructure in owners:
            if owns(value):
                return member_unstructure(value, depth, budget)
        raise type_mismatch(name, value)

    # Structuring dispatches on the decoded JSON type, then on the exact value for value sets.
    by_json: dict[type, list[tuple[frozenset[Any] | None, Callable[..., Any]]]] = {}
    for member in ordered:
        if member.values is not None:
            per_type: dict[type, set[Any]] = {}
            for json_type, json_value in member.values:
                per_type.setdefault(json_type, set()).add(json_value)
            for json_type, accepted in per_type.items():
                by_json.setdefault(json_type, []).append((frozenset(accepted), member.structure))
        elif "object" not in member.kinds:
            for json_type in _json_types(member):
                by_json.setdefault(json_type, []).append((None, member.structure))
    if float_node is not None and not has_int:
        by_json.setdefault(int, []).append((None, float_node.structure))
    object_structure = _object_dispatch(name, members, converter)
    if object_structure is not None:
        by_json[dict] = [(None, object_structure)]

    def structure(obj: Any, _type: Any = None) -> Any:
        for accepted, member_structure in by_json.get(type(obj), ()):
            if accepted is None or obj in accepted:
                return member_structure(obj)
        raise Mismatch(f"expected {name}, got JSON {json_kind(obj)}")

    plain = all(member.tp in _PLAIN_SCALARS for member in members)
    member_natives = [member.native for member in members]
    native = native_many = None
    floor: Callable[[Any], int] | None = None
    floor_many: Callable[[Collection[Any]], int] = _plain_scalars_floor if plain else len
    if None not in member_natives:

        def native(value: Any) -> bool:
            return any(member_native(value) for member_native in member_natives)  # type: ignore[misc]

        native_many = (
            _plain_scalars_many(frozenset(member.tp for member in members))
            if plain
            else many_from_one(native)
        )
        sized = [(member.native, member.floor) for member in members if member.floor is not None]
        if sized:

            def floor(value: Any) -> int:
                for member_native, member_floor in sized:
                    if member_native(value):  # type: ignore[misc]
                        return member_floor(value)
                return 1

            def floor_each(batch: Collection[Any]) -> int:
                return sum(map(floor, batch))

            if not plain:
                floor_many = floor_each
    member_json_natives = [member.json_native for member in members]
    json_native = json_native_many = None
    if None not in member_json_natives:

        def json_native(obj: Any) -> bool:
            return any(member_json_native(obj) for member_json_native in member_json_natives)  # type: ignore[misc]

        json_native_many = (
            types_within(frozenset(member.tp for member in members)) if plain else many_from_one(json_native)
        )

    def owns_any(value: Any) -> bool:
        return any(owns(value) for owns, _ in owners)

    return Node(
        tp,
        name,
        frozenset().union(*(member.kinds for member in members)),
        unstructure,
        structure,
        owns_any,
        lambda defs: {"anyOf": [member.schema(defs) for member in members]},
        native,
        native_many,
        hashable=all(member.hashable for member in members),
        json_native=json_native,
        json_native_many=json_native_many,
        size=min(member.size for member in members),
        floor=floor,
        floor_many=floor_many,
        depth=deepest(member.depth for member in members),
    )


_PLAIN_SCALARS = (NoneType, bool, int, float, str)


def _plain_scalars_floor(batch: Collection[Any]) -> int:
    """A byte per item, and the quotes and characters of the strings among them."""
    strs = [*filter(str.__instancecheck__, batch)]
    return len(batch) + sum(map(len, strs)) + len(strs)


def _plain_scalars_many(allowed: frozenset[type]) -> Callable[[Iterable[Any]], bool]:
    """Bulk test for a union of plain scalars (``int | str``, ``float | None``) without a call per item."""

    def all_plain(batch: Iterable[Any]) -> bool:
        present = set(map(type, batch))
        if not present <= allowed:
            return False
        if int in present:
            ints = [item for item in batch if type(item) is int]
            if min(ints) < INT_MIN or max(ints) > INT_MAX:
                return False
        return float not in present or finite_floats([item for item in batch if type(item) is float])

    return all_plain


_KIND_TYPES: dict[str, tuple[type, ...]] = {
    "null": (NoneType,),
    "boolean": (bool,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
}


def _json_types(node: Node) -> list[type]:
    """The decoded JSON types a general (non-object) member structures from."""
    if node.tp is float:
        return [float]
    if node.tp is int:
        return [int]
    return [json_type for kind in node.kinds for json_type in _KIND_TYPES[kind]]


def _check_union(name: str, members: list[Node]) -> None:
    """Refuse unions whose members a stored JSON value could not tell apart."""
    seen_values: dict[tuple[type, Any], Node] = {}
    for member in members:
        for pair, value in (member.values or {}).items():
            other = seen_values.setdefault(pair, member)
            known = other.values[pair]  # type: ignore[index]
            if other is not member and not (type(known) is type(value) and known == value):
                raise Refusal(
                    f"{other.name} and {member.name} in {name} both store the value {pair[1]!r}, so a restore "
                    "could not tell which one was meant",
                    "give the members distinct values, or drop one of them",
                )
    objects = [member for member in members if "object" in member.kinds]
    if len(objects) > 1 and not all(is_class(member.tp) for member in objects):
        raise Refusal(
            f"{name} mixes a dict with other JSON objects, which a restore could not tell apart",
            "use a single dict type, or only attrs classes / dataclasses, in the union",
        )
    for kind in ("boolean", "number", "string", "array"):
        general = [member for member in members if kind in member.kinds and member.values is None]
        enums = [member for member in members if kind in member.kinds and _is_enum(member.tp)]
        if kind == "number" and sorted(member.name for member in general) == ["float", "int"]:
            general = []  # JSON keeps 3 and 3.0 apart
        if len(general) > 1:
            raise Refusal(
                f"{' and '.join(member.name for member in general)} in {name} are all stored as JSON {kind}s, so a "
                "restore could not tell which one was meant",
                "keep one of them, or wrap each in its own attrs class with a distinguishing field",
            )
        if general and enums:
            raise Refusal(
                f"{enums[0].name} and {general[0].name} in {name} are both stored as JSON {kind}s, so a "
                f"stored {general[0].name} could come back as {enums[0].name}",
                "drop one of them, or use a Literal for the fixed values",
            )


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _object_dispatch(
    name: str, members: list[Node], converter: cattrs.Converter
) -> Callable[..., Any] | None:
    """The structure function for JSON objects: the one object member's, or a pick among classes."""
    objects = [member for member in members if "object" in member.kinds]
    if len(objects) < 2:
        return objects[0].structure if objects else None
    by_class = {member.tp: member.structure for member in objects}
    try:
        pick = create_default_dis_func(converter, *by_class, overrides={})
    except (TypeError, ValueError) as exc:
        raise Refusal(
            f"the classes in {name} cannot be told apart from their stored fields ({exc}); no class name "
            "is stored",
            "give each class a required field no other member has, or a common Literal tag field "
            "(kind: Literal['a'] = 'a') with a different value per class",
        ) from None

    def structure(obj: Any, _type: Any = None) -> Any:
        try:
            cls = pick(obj)
        except (KeyError, ValueError, TypeError):
            cls = None
        class_structure = by_class.get(cls)
        if class_structure is None:
            raise Mismatch(f"the stored object matches no member of {name}")
        return class_structure(obj)

    return structure
