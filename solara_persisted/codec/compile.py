"""Type -> node: dispatch to the node builders, memoised per type, and ``compile_type``.

The package's cattrs ``converter`` is made here too: the class and union builders generate code
with it and its hooks are ``compile_type``, so it is built (by ``cattrs_converter``) once the
compiler exists and handed to those builders.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import types
import typing
from typing import Any

from ..errors import UnsupportedTypeError
from .cattrs_converter import strict_converter
from .classes import class_node
from .containers import dict_node, fixed_tuple_node, list_node, set_node
from .nodes import Node, NoneType, Refusal, is_class, type_name
from .scalars import SCALAR_FACTORIES
from .type_codec import TypeCodec
from .unions import union_node
from .value_sets import enum_node, literal_node

_lock = threading.RLock()
_memo: dict[Any, Node] = {}


def _compile(tp: Any) -> Node:
    try:
        cached = _memo.get(tp)
    except TypeError:  # unhashable metadata, e.g. inside Annotated
        cached = None
    if cached is not None:
        if cached.unstructure is None:  # a recursive class still being compiled: defer the lookup
            return Node(
                tp,
                cached.name,
                frozenset({"object"}),
                lambda value, depth=0, budget=None: cached.unstructure(value, depth, budget),
                lambda obj, _type=None: cached.structure(obj),
                lambda value: cached.owns(value),
                lambda defs: cached.schema(defs),
                hashable=getattr(tp, "__hash__", None) is not None,
                size=0,  # not known yet, and a lower bound is all a size must be
                depth=None,  # a class that contains itself: no bound but MAX_DEPTH
            )
        return cached
    node = _build(tp)
    with contextlib.suppress(TypeError):  # unhashable types are simply not memoised
        _memo[tp] = node
    return node


def _build(tp: Any) -> Node:
    if tp is None:
        tp = NoneType
    if isinstance(tp, (str, typing.ForwardRef)):
        raise Refusal(
            f"unresolved forward reference {tp!r}", "make the name importable where the type is declared"
        )
    if tp in (typing.Any, object):
        raise Refusal(
            f"{type_name(tp)} says nothing about the stored shape, so it can be neither checked nor restored",
            "declare the concrete type, e.g. int, list[str] or an attrs class",
        )
    if isinstance(tp, typing.TypeVar):
        raise Refusal(f"type variable {tp} is not a concrete type", "declare the concrete type")
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # typing.NewType
        return _compile(supertype)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _compile(args[0])
    if origin in (typing.Union, types.UnionType):
        return union_node(tp, [_compile(arg) for arg in args], converter)
    if origin is typing.Literal:
        return literal_node(tp)
    factory = SCALAR_FACTORIES.get(tp)
    if factory is not None:
        return factory()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return enum_node(tp)
    if origin is list or tp is list:
        return list_node(tp, _item(tp, args, "list", "list[int]"), as_tuple=False)
    if origin is tuple or tp is tuple:
        if tp is tuple:
            raise Refusal("bare tuple has no item types", "write tuple[int, ...] or tuple[int, str]")
        if len(args) == 2 and args[1] is Ellipsis:
            return list_node(tp, _compile(args[0]), as_tuple=True)
        return fixed_tuple_node(tp, [_compile(arg) for arg in args])
    if origin in (set, frozenset) or tp in (set, frozenset):
        py_type = origin or tp
        item = _item(tp, args, py_type.__name__, f"{py_type.__name__}[str]")
        if not item.hashable:
            raise Refusal(
                f"{item.name} in {type_name(tp)} is not hashable, so it cannot be a set element",
                "use a tuple, frozenset or frozen attrs class as the element type",
            )
        return set_node(tp, item, py_type)
    if origin is dict or tp is dict:
        if not args:
            raise Refusal("bare dict has no key and value types", "write dict[str, int]")
        if args[0] is not str:
            raise Refusal(
                f"dict key type {type_name(args[0])} in {type_name(tp)}: JSON object keys are strings",
                "use dict[str, ...] (convert keys to str yourself), or a list of pairs",
            )
        return dict_node(tp, _compile(args[1]))
    if is_class(tp):
        node = Node(tp, tp.__qualname__)
        _memo[tp] = node
        try:
            class_node(tp, node, _compile, converter)
        except BaseException:
            del _memo[tp]
            raise
        return node
    if origin is not None and is_class(origin):
        raise Refusal(f"{type_name(tp)} is a parametrised generic class", "declare a concrete class")
    raise Refusal(
        f"{type_name(tp)} has no JSON form",
        "use None, bool, int, float, str, list, tuple, set, dict[str, ...], Optional/Union, Literal, Enum, "
        "datetime/date/time, UUID, Decimal, bytes, or an attrs class / dataclass of those, "
        'or declare codec="pickle"',
    )


def _item(tp: Any, args: tuple[Any, ...], what: str, example: str) -> Node:
    if not args:
        raise Refusal(f"bare {what} has no item type", f"write e.g. {example}")
    return _compile(args[0])


def _unsupported(site: str, refusal: Refusal, tp: Any) -> UnsupportedTypeError:
    whole = type_name(tp)
    problem = refusal.problem if whole in refusal.problem else f"{refusal.problem} (declared type {whole})"
    return UnsupportedTypeError(site, problem, refusal.fix)


def _compile_top(tp: Any, site: str) -> Node:
    """Compile under the lock; a refusal leaves no half-built (e.g. recursive) nodes behind."""
    with _lock:
        before = set(_memo)
        try:
            return _compile(tp)
        except Refusal as refusal:
            for added in set(_memo) - before:
                del _memo[added]
            raise _unsupported(site, refusal, tp) from None


def compile_type(tp: Any, *, key: str, site: str = "") -> TypeCodec:
    """Analyse ``tp`` once and return its codec; ``UnsupportedTypeError`` names the part that cannot be stored."""
    return TypeCodec(key, tp, _compile_top(tp, site))


#: The package's cattrs converter: ``converter.structure(obj, T)`` / ``converter.unstructure(value, T)``
#: behave exactly like ``compile_type(T)``.
converter = strict_converter(compile_type)
