"""attrs classes and dataclasses, structured by cattrs-generated functions on the package's converter.

Field types are compiled by the ``compile_field`` that ``compile`` passes in: the compiler
imports the builders, never the reverse.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from ..errors import CodecError
from .nodes import (
    MAX_DEPTH,
    _Budget,
    _dec_mismatch,
    _Defs,
    _Mismatch,
    _mismatch,
    _nested,
    _Node,
    _Refusal,
    _too_deep,
)

#: One converter for the package: its hooks are the strict ones ``compile`` builds (installed by
#: ``cattrs_converter``), so ``converter.structure(obj, T)`` / ``converter.unstructure(v, T)``
#: behave exactly like a codec.
converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)


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


def _class_node(cls: type, node: _Node, compile_field: Callable[[Any], _Node]) -> None:
    """Fill ``node`` (already memoised, so recursive classes can refer to it) for an attrs class or dataclass."""
    if getattr(cls, "__parameters__", ()):
        raise _Refusal(
            f"{cls.__qualname__} is generic",
            "declare a concrete class (generic attrs classes / dataclasses are not supported)",
        )
    fields = []
    for field_name, field_type, has_default in _class_fields(cls):
        try:
            fields.append((field_name, compile_field(field_type), has_default))
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

    def un(v: Any, d: int = 0, b: _Budget | None = None) -> dict[str, Any]:
        if type(v) is not cls:
            raise _mismatch(name, v)
        if d >= MAX_DEPTH:
            raise _too_deep()
        d += 1
        out = {}
        f = ""
        try:
            for f, fu in plan:
                out[f] = fu(getattr(v, f), d, b)
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
    node.depth = _nested(n.depth for _, n, _ in fields)
    # Braces, commas, and each field's quoted name, colon and smallest value: all a capped encode
    # takes for an instance, before its fields take what they write beyond that.
    node.size = 1 + sum(len(f) + 4 + n.size for f, n, _ in fields) if fields else 2


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
