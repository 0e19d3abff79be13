"""list, tuple (homogeneous and fixed-size), set, frozenset and dict[str, ...]."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from itertools import chain
from typing import Any

import orjson

from .nodes import (
    MAX_DEPTH,
    ORJSON_OPTIONS,
    Budget,
    Defs,
    Mismatch,
    Node,
    json_mismatch,
    key_segment,
    nested_depth,
    short_repr,
    too_deep,
    type_mismatch,
    type_name,
)

_LIST_ONLY = frozenset({list})
_DICT_ONLY = frozenset({dict})


def list_node(tp: Any, item_node: Node, *, as_tuple: bool) -> Node:
    py_type = tuple if as_tuple else list
    name = type_name(tp)
    item_unstructure, item_structure = item_node.unstructure, item_node.structure
    item_native_many, item_json_native_many = item_node.native_many, item_node.json_native_many
    item_floor_many, item_size = item_node.floor_many, item_node.size

    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> list[Any]:
        if not isinstance(value, py_type):
            raise type_mismatch(name, value)
        if budget is not None and value:
            budget.take(len(value) * (item_size + 1) - 1)  # the items at their smallest, and the commas
        if item_native_many is not None and item_native_many(value):
            if budget is not None:
                budget.take(max(0, item_floor_many(value) - len(value) * item_size))
            return value if type(value) is list else list(value)
        if depth >= MAX_DEPTH:
            raise too_deep()
        depth += 1
        out = []
        append = out.append
        i = 0
        try:
            for i, item in enumerate(value):  # noqa: B007 - i names the failing element
                append(item_unstructure(item, depth, budget))
        except Mismatch as mismatch:
            mismatch.push(f"[{i}]", value)
            raise
        return out

    def structure(obj: Any, _type: Any = None) -> Any:
        if type(obj) is not list:
            raise json_mismatch("array", obj)
        if item_json_native_many is not None and item_json_native_many(obj):
            return tuple(obj) if as_tuple else obj
        out = []
        append = out.append
        i = 0
        try:
            for i, item in enumerate(obj):  # noqa: B007 - i names the failing element
                append(item_structure(item))
        except Mismatch as mismatch:
            mismatch.push(f"[{i}]", obj)
            raise
        return tuple(out) if as_tuple else out

    native = native_many = json_native = json_native_many = None
    if item_native_many is not None and not as_tuple:

        def native(value: Any) -> bool:
            return type(value) is list and item_native_many(value)

        def native_many(batch: Iterable[Any]) -> bool:
            return set(map(type, batch)) <= _LIST_ONLY and item_native_many(list(chain.from_iterable(batch)))

    def floor(value: list[Any]) -> int:
        return len(value) + 1 + item_floor_many(value)

    def floor_many(batch: Collection[list[Any]]) -> int:
        elements = list(chain.from_iterable(batch))
        return len(elements) + len(batch) + item_floor_many(elements)

    if item_json_native_many is not None and not as_tuple:

        def json_native(obj: Any) -> bool:
            return type(obj) is list and item_json_native_many(obj)

        def json_native_many(batch: Iterable[Any]) -> bool:
            return set(map(type, batch)) <= _LIST_ONLY and item_json_native_many(
                list(chain.from_iterable(batch))
            )

    def owns(value: Any) -> bool:
        return isinstance(value, py_type)

    return Node(
        tp,
        name,
        frozenset({"array"}),
        unstructure,
        structure,
        owns,
        lambda defs: {"type": "array", "items": item_node.schema(defs)},
        native,
        native_many,
        hashable=as_tuple and item_node.hashable,
        json_native=json_native,
        json_native_many=json_native_many,
        size=2,
        floor=floor,
        floor_many=floor_many,
        depth=nested_depth([item_node.depth]),
    )


def fixed_tuple_node(tp: Any, item_nodes: list[Node]) -> Node:
    name = type_name(tp)
    size = len(item_nodes)
    item_unstructures = [item_node.unstructure for item_node in item_nodes]
    item_structures = [item_node.structure for item_node in item_nodes]

    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> list[Any]:
        if not isinstance(value, tuple):
            raise type_mismatch(name, value)
        if len(value) != size:
            raise Mismatch(f"expected {name} ({size} items), got {len(value)} items")
        if depth >= MAX_DEPTH:
            raise too_deep()
        depth += 1
        out = []
        i = 0
        try:
            for i, (item_unstructure, item) in enumerate(zip(item_unstructures, value, strict=True)):  # noqa: B007 - i names the failing element
                out.append(item_unstructure(item, depth, budget))
        except Mismatch as mismatch:
            mismatch.push(f"[{i}]", value)
            raise
        return out

    def structure(obj: Any, _type: Any = None) -> tuple[Any, ...]:
        if type(obj) is not list:
            raise json_mismatch("array", obj)
        if len(obj) != size:
            raise Mismatch(f"expected an array of {size} items for {name}, got {len(obj)}")
        out = []
        i = 0
        try:
            for i, (item_structure, item) in enumerate(zip(item_structures, obj, strict=True)):  # noqa: B007 - i names the failing element
                out.append(item_structure(item))
        except Mismatch as mismatch:
            mismatch.push(f"[{i}]", obj)
            raise
        return tuple(out)

    def owns(value: Any) -> bool:
        return isinstance(value, tuple)

    def schema(defs: Defs) -> dict[str, Any]:
        return {
            "type": "array",
            "prefixItems": [item_node.schema(defs) for item_node in item_nodes],
            "items": False,
            "minItems": size,
            "maxItems": size,
        }

    return Node(
        tp,
        name,
        frozenset({"array"}),
        unstructure,
        structure,
        owns,
        schema,
        hashable=all(item_node.hashable for item_node in item_nodes),
        size=1 + sum(item_node.size + 1 for item_node in item_nodes) if item_nodes else 2,
        depth=nested_depth(item_node.depth for item_node in item_nodes),
    )


def _canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=ORJSON_OPTIONS | orjson.OPT_SORT_KEYS)


def set_node(tp: Any, item_node: Node, py_type: type) -> Node:
    name = type_name(tp)
    item_unstructure, item_structure = item_node.unstructure, item_node.structure
    item_json_native_many, item_size = item_node.json_native_many, item_node.size

    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> list[Any]:
        if not isinstance(value, py_type):
            raise type_mismatch(name, value)
        if depth >= MAX_DEPTH:
            raise too_deep()
        if budget is not None and value:
            budget.take(len(value) * (item_size + 1) - 1)
        depth += 1
        out = []
        try:
            for item in value:
                out.append(item_unstructure(item, depth, budget))
        except Mismatch as mismatch:
            mismatch.push("[*]", value)  # a set has no positions: "some element"
            raise
        # Sorted so that equal sets always give equal bytes.
        try:
            out.sort()
        except TypeError:
            out.sort(key=_canonical)
        return out

    def structure(obj: Any, _type: Any = None) -> Any:
        if type(obj) is not list:
            raise json_mismatch("array", obj)
        if item_json_native_many is not None and item_json_native_many(obj):
            return py_type(obj)
        i = 0
        out = []
        try:
            for i, item in enumerate(obj):  # noqa: B007 - i names the failing element
                out.append(item_structure(item))
        except Mismatch as mismatch:
            mismatch.push(f"[{i}]", obj)
            raise
        return py_type(out)

    def owns(value: Any) -> bool:
        return isinstance(value, py_type)

    return Node(
        tp,
        name,
        frozenset({"array"}),
        unstructure,
        structure,
        owns,
        lambda defs: {"type": "array", "items": item_node.schema(defs), "uniqueItems": True},
        hashable=py_type is frozenset,
        size=2,
        depth=nested_depth([item_node.depth]),
    )


def dict_node(tp: Any, value_node: Node) -> Node:
    name = type_name(tp)
    value_unstructure, value_structure = value_node.unstructure, value_node.structure
    value_native_many, value_json_native_many = value_node.native_many, value_node.json_native_many
    value_floor_many, value_size = value_node.floor_many, value_node.size
    str_only = frozenset({str})

    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise type_mismatch(name, value)
        if budget is not None and value:
            # the values at their smallest, the commas, and each key's quotes and colon
            budget.take(len(value) * (value_size + 4) - 1)
        if (
            value_native_many is not None
            and set(map(type, value)) <= str_only
            and value_native_many(value.values())
        ):
            if budget is not None:
                budget.take(
                    sum(map(len, value)) + max(0, value_floor_many(value.values()) - len(value) * value_size)
                )
            return value if type(value) is dict else dict(value)
        if depth >= MAX_DEPTH:
            raise too_deep()
        if budget is not None and set(map(type, value)) <= str_only:
            budget.take(sum(map(len, value)))
        depth += 1
        out = {}
        key = None
        try:
            for key, item in value.items():
                if not isinstance(key, str):
                    raise Mismatch(
                        f"dict keys must be str, got {type(key).__qualname__} key {short_repr(key)}"
                    )
                out[str.__str__(key)] = value_unstructure(item, depth, budget)
        except Mismatch as mismatch:
            mismatch.push(key_segment(key) if isinstance(key, str) else f"[{short_repr(key)}]", value)
            raise
        return out

    def structure(obj: Any, _type: Any = None) -> dict[str, Any]:
        if type(obj) is not dict:
            raise json_mismatch("object", obj)
        if value_json_native_many is not None and value_json_native_many(obj.values()):
            return obj
        out = {}
        key = ""
        try:
            for key, item in obj.items():
                out[key] = value_structure(item)
        except Mismatch as mismatch:
            mismatch.push(key_segment(key), obj)
            raise
        return out

    native = native_many = json_native = json_native_many = None
    if value_json_native_many is not None:

        def json_native(obj: Any) -> bool:
            return type(obj) is dict and value_json_native_many(obj.values())

        def json_native_many(batch: Iterable[Any]) -> bool:
            return set(map(type, batch)) <= _DICT_ONLY and value_json_native_many(
                list(chain.from_iterable(map(dict.values, batch)))
            )

    def floor(value: dict[str, Any]) -> int:
        return 4 * len(value) + 1 + sum(map(len, value)) + value_floor_many(value.values())

    def floor_many(batch: Collection[dict[str, Any]]) -> int:
        keys = list(chain.from_iterable(batch))
        values = list(chain.from_iterable(map(dict.values, batch)))
        return 4 * len(keys) + len(batch) + sum(map(len, keys)) + value_floor_many(values)

    if value_native_many is not None:

        def native(value: Any) -> bool:
            return (
                type(value) is dict
                and set(map(type, value)) <= str_only
                and value_native_many(value.values())
            )

        def native_many(batch: Iterable[Any]) -> bool:
            return (
                set(map(type, batch)) <= _DICT_ONLY
                and set(map(type, chain.from_iterable(batch))) <= str_only
                and value_native_many(list(chain.from_iterable(map(dict.values, batch))))
            )

    def owns(value: Any) -> bool:
        return isinstance(value, dict)

    return Node(
        tp,
        name,
        frozenset({"object"}),
        unstructure,
        structure,
        owns,
        lambda defs: {"type": "object", "additionalProperties": value_node.schema(defs)},
        native,
        native_many,
        hashable=False,
        json_native=json_native,
        json_native_many=json_native_many,
        size=2,
        floor=floor,
        floor_many=floor_many,
        depth=nested_depth([value_node.depth]),
    )
