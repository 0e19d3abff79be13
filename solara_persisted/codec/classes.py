"""attrs classes and dataclasses, structured by cattrs-generated functions on the package's converter.

Field types are compiled by the ``compile_field``, and structure functions generated with the
``converter``, that ``compile`` passes in: the compiler imports the builders, never the reverse.
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
    Budget,
    Defs,
    Mismatch,
    Node,
    Refusal,
    json_mismatch,
    nested_depth,
    too_deep,
    type_mismatch,
)


def _class_fields(cls: type) -> list[tuple[str, Any, bool]]:
    """(name, resolved type, has default) of every field the class's __init__ takes."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise Refusal(
            f"the field annotations of {cls.__qualname__} cannot be resolved ({exc})",
            "make every name used in its annotations importable from its module",
        ) from None
    out = []
    if attrs.has(cls):
        for attribute in attrs.fields(cls):
            if attribute.init:
                has_default = attribute.default is not attrs.NOTHING
                out.append((attribute.name, hints.get(attribute.name, attribute.type), has_default))
    else:
        for field in dataclasses.fields(cls):
            if field.init:
                has_default = (
                    field.default is not dataclasses.MISSING
                    or field.default_factory is not dataclasses.MISSING
                )
                out.append((field.name, hints.get(field.name, field.type), has_default))
    return out


#: Field names make_dict_structure_fn takes as its own arguments; such fields use the converter's hook.
_CATTRS_PARAMETERS = frozenset({"cl", "converter"})


def class_node(
    cls: type, node: Node, compile_field: Callable[[Any], Node], converter: cattrs.Converter
) -> None:
    """Fill ``node`` (already memoised, so recursive classes can refer to it) for an attrs class or dataclass."""
    if getattr(cls, "__parameters__", ()):
        raise Refusal(
            f"{cls.__qualname__} is generic",
            "declare a concrete class (generic attrs classes / dataclasses are not supported)",
        )
    fields = []
    for field_name, field_type, has_default in _class_fields(cls):
        try:
            fields.append((field_name, compile_field(field_type), has_default))
        except Refusal as refusal:
            raise Refusal(f"field {cls.__qualname__}.{field_name}: {refusal.problem}", refusal.fix) from None
    name = cls.__qualname__
    plan = [(field_name, field_node.unstructure) for field_name, field_node, _ in fields]
    generated = make_dict_structure_fn(
        cls,
        converter,
        _cattrs_forbid_extra_keys=True,
        _cattrs_detailed_validation=True,
        **{
            field_name: override(struct_hook=field_node.structure)
            for field_name, field_node, _ in fields
            if field_name not in _CATTRS_PARAMETERS
        },
    )

    def unstructure(value: Any, depth: int = 0, budget: Budget | None = None) -> dict[str, Any]:
        if type(value) is not cls:
            raise type_mismatch(name, value)
        if depth >= MAX_DEPTH:
            raise too_deep()
        depth += 1
        out = {}
        field_name = ""
        try:
            for field_name, field_unstructure in plan:
                out[field_name] = field_unstructure(getattr(value, field_name), depth, budget)
        except Mismatch as mismatch:
            mismatch.push("." + field_name, value)
            raise
        return out

    def structure(obj: Any, _type: Any = None) -> Any:
        if type(obj) is not dict:
            raise json_mismatch(f"object for {name}", obj)
        try:
            return generated(obj, cls)
        except ClassValidationError as exc:
            raise _from_class_error(name, exc) from None

    def owns(value: Any) -> bool:
        return type(value) is cls

    def schema(defs: Defs) -> dict[str, Any]:
        return defs.ref(
            cls,
            lambda: {
                "title": name,
                "type": "object",
                "properties": {field_name: field_node.schema(defs) for field_name, field_node, _ in fields},
                "required": [field_name for field_name, _, has_default in fields if not has_default],
                "additionalProperties": False,
            },
        )

    node.unstructure, node.structure, node.owns, node.schema = unstructure, structure, owns, schema
    node.hashable = getattr(cls, "__hash__", None) is not None
    node.kinds = frozenset({"object"})
    node.depth = nested_depth(field_node.depth for _, field_node, _ in fields)
    # Braces, commas, and each field's quoted name, colon and smallest value: all a capped encode
    # takes for an instance, before its fields take what they write beyond that.
    node.size = (
        1 + sum(len(field_name) + 4 + field_node.size for field_name, field_node, _ in fields)
        if fields
        else 2
    )


def _from_class_error(name: str, exc: ClassValidationError) -> Mismatch:
    """The first failing field of a cattrs class error, as a path and a problem."""
    failure = exc.exceptions[0]
    if isinstance(failure, ForbiddenExtraKeysError):
        return Mismatch(
            f"unexpected field(s) {', '.join(sorted(map(repr, failure.extra_fields)))} for {name}"
        )
    # Notes pile up on one exception as it passes through nested classes: the last is ours.
    notes = [note for note in getattr(failure, "__notes__", ()) if isinstance(note, AttributeValidationNote)]
    if not notes:
        return Mismatch(f"{name}(...) refused the stored fields: {failure!r}")
    if isinstance(failure, Mismatch):
        mismatch = failure
    elif isinstance(failure, CodecError):  # raised through the converter's hook
        mismatch = Mismatch(failure.problem)
        if failure.path:
            mismatch.push(failure.path, None)
    elif isinstance(failure, KeyError):
        mismatch = Mismatch(f"missing required field of {name}")
    else:
        mismatch = Mismatch(f"{type(failure).__name__}: {failure}")
    mismatch.push("." + notes[-1].name, None)
    return mismatch
