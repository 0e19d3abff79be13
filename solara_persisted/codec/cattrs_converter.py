"""The package's cattrs ``converter``, hooked to the strict codecs so that it behaves exactly like one.

The converter is made in ``classes`` (cattrs generates class structure functions with it); its hooks
need ``compile_type``, so they are installed here, above the compiler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .classes import converter
from .compile import compile_type
from .nodes import _NoneType

__all__ = ["converter"]

_CONVERTER_KEY = "(converter)"


def _structure_hook_factory(tp: Any) -> Callable[..., Any]:
    codec = compile_type(tp, key=_CONVERTER_KEY, site="cattrs converter")
    return lambda obj, _t=None: codec.structure(obj)


def _unstructure_hook_factory(tp: Any) -> Callable[[Any], Any]:
    return compile_type(tp, key=_CONVERTER_KEY, site="cattrs converter").unstructure


converter.register_structure_hook_factory(lambda tp: True, _structure_hook_factory)
converter.register_unstructure_hook_factory(lambda tp: True, _unstructure_hook_factory)
# cattrs dispatches these classes directly (and leniently: int("3")) before any factory.
for _tp in (_NoneType, bool, int, float, str, bytes):
    converter.register_structure_hook(_tp, _structure_hook_factory(_tp))
    converter.register_unstructure_hook(_tp, _unstructure_hook_factory(_tp))
