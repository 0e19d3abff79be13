"""list, tuple (homogeneous and fixed-size), set, frozenset and dict[str, ...]."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from itertools import chain
from typing import Any

import orjson

from .nodes import (
    _ORJSON_OPTIONS,
    MAX_DEPTH,
    _Budget,
    _dec_mismatch,
    _Defs,
    _Mismatch,
    _mismatch,
    _nested,
    _Node,
    _short,
    _too_deep,
    type_name,
)

_LIST_ONLY = frozenset({list})
_DICT_ONLY = frozenset({dict})


def _key_segment(key: str) -> str:
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def _list_node(tp: Any, item: _Node, *, as_tuple: bool) -> _Node:
    py_type = tuple if as_tuple else list
    name = type_name(tp)
    eu, est, item_ok_many, item_json_many = item.un, item.st, item.ok_many, item.json_ok_many
    item_floor_many, item_size = item.floor_many, item.size

    def un(v: Any, d: int = 0, b: _Budget | None = None) -> list[Any]:
        if not isinstance(v, py_type):
            raise _mismatch(name, v)
        if b is not None and v:
            b.take(len(v) * (item_size + 1) - 1)  # the items at their smallest, and the commas
        if item_ok_many is not None and item_ok_many(v):
            if b is not None:
                b.take(max(0, item_floor_many(v) - len(v) * item_size))
            return v if type(v) is list else list(v)
        if d >= MAX_DEPTH:
            raise _too_deep()
        d += 1
        out = []
        append = out.append
        i = 0
        try:
            for i, x in enumerate(v):  # noqa: B007 - i names the failing element
                append(eu(x, d, b))
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

    def floor(v: list[Any]) -> int:
        return len(v) + 1 + item_floor_many(v)

    def floor_many(xs: Collection[list[Any]]) -> int:
        items = list(chain.from_iterable(xs))
        return len(items) + len(xs) + item_floor_many(items)

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
        size=2,
        floor=floor,
        floor_many=floor_many,
        depth=_nested([item.depth]),
    )


def _fixed_tuple_node(tp: Any, items: list[_Node]) -> _Node:
    name = type_name(tp)
    size = len(items)
    uns = [n.un for n in items]
    sts = [n.st for n in items]

    def un(v: Any, d: int = 0, b: _Budget | None = None) -> list[Any]:
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
                out.append(f(x, d, b))
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
        size=1 + sum(n.size + 1 for n in items) if items else 2,
        depth=_nested(n.depth for n in items),
    )


def _canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_ORJSON_OPTIONS | orjson.OPT_SORT_KEYS)


def _set_node(tp: Any, item: _Node, py_type: type) -> _Node:
    name = type_name(tp)
    eu, est, item_json_many, item_size = item.un, item.st, item.json_ok_many, item.size

    def un(v: Any, d: int = 0, b: _Budget | None = None) -> list[Any]:
        if not isinstance(v, py_type):
            raise _mismatch(name, v)
        if d >= MAX_DEPTH:
            raise _too_deep()
        if b is not None and v:
            b.take(len(v) * (item_size + 1) - 1)
        d += 1
        out = []
        try:
            for x in v:
                out.append(eu(x, d, b))
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
        size=2,
        depth=_nested([item.depth]),
    )


def _dict_node(tp: Any, value: _Node) -> _Node:
    name = type_name(tp)
    vu, vst, value_ok_many, value_json_many = value.un, value.st, value.ok_many, value.json_ok_many
    value_floor_many, value_size = value.floor_many, value.size
    str_only = frozenset({str})

    def un(v: Any, d: int = 0, b: _Budget | None = None) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise _mismatch(name, v)
        if b is not None and v:
            # the values at their smallest, the commas, and each key's quotes and colon
            b.take(len(v) * (value_size + 4) - 1)
        if value_ok_many is not None and set(map(type, v)) <= str_only and value_ok_many(v.values()):
            if b is not None:
                b.take(sum(map(len, v)) + max(0, value_floor_many(v.values()) - len(v) * value_size))
            return v if type(v) is dict else dict(v)
        if d >= MAX_DEPTH:
            raise _too_deep()
        if b is not None and set(map(type, v)) <= str_only:
            b.take(sum(map(len, v)))
        d += 1
        out = {}
        k = None
        try:
            for k, x in v.items():
                if not isinstance(k, str):
                    raise _Mismatch(f"dict keys must be str, got {type(k).__qualname__} key {_short(k)}")
                out[str.__str__(k)] = vu(x, d, b)
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

    def floor(v: dict[str, Any]) -> int:
        return 4 * len(v) + 1 + sum(map(len, v)) + value_floor_many(v.values())

    def floor_many(xs: Collection[dict[str, Any]]) -> int:
        keys = list(chain.from_iterable(xs))
        values = list(chain.from_iterable(map(dict.values, xs)))
        return 4 * len(keys) + len(xs) + sum(map(len, keys)) + value_floor_many(values)

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
        size=2,
        floor=floor,
        floor_many=floor_many,
        depth=_nested([value.depth]),
    )
