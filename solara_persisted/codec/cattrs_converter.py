"""The package's strict cattrs converter: every hook is the codec ``compile_type`` builds.

The converter and the compiler need each other (the class and union builders generate code with
the converter; its hooks are ``compile_type``), so ``compile`` makes the one instance by passing
``compile_type`` in, and the converter is built and hooked in this one function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cattrs

from .nodes import NoneType

__all__ = ["strict_converter"]

#: The key errors raised through the converter name: it serves no persisted key.
_CONVERTER_KEY = "(converter)"
_SITE = "cattrs converter"


def strict_converter(compile_type: Callable[..., Any]) -> cattrs.Converter:
    """A converter whose ``structure(obj, T)`` / ``unstructure(value, T)`` behave exactly like ``T``'s codec."""
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)

    def structure_hook_for(tp: Any) -> Callable[..., Any]:
        codec = compile_type(tp, key=_CONVERTER_KEY, site=_SITE)
        return lambda obj, _type=None: codec.structure(obj)

    def unstructure_hook_for(tp: Any) -> Callable[[Any], Any]:
        return compile_type(tp, key=_CONVERTER_KEY, site=_SITE).unstructure

    converter.register_structure_hook_factory(lambda tp: True, structure_hook_for)
    converter.register_unstructure_hook_factory(lambda tp: True, unstructure_hook_for)
    # cattrs dispatches these classes directly (and leniently: int("3")) before any factory.
    for tp in (NoneType, bool, int, float, str, bytes):
        converter.register_structure_hook(tp, structure_hook_for(tp))
        converter.register_unstructure_hook(tp, unstructure_hook_for(tp))
    return converter
