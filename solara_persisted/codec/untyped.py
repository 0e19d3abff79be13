"""``UntypedCodec``: JSON for Solara's own ``persist=True`` reactives, which declare no type.

The only type such a reactive names is its default's. A value of the default's own class (an
attrs class, dataclass, pydantic model, Enum, datetime, UUID...) goes through that class's codec,
bare, exactly as ``@persisted`` with that annotation writes it. Everything else is read from the
value itself: what JSON has (None, bool, int, float, str, list, str-keyed dict) is written as it
is, and each kind JSON lacks is tagged with a reserved key, ``{"$sp": "tuple", "v": [...]}``
(a plain dict that holds ``"$sp"`` itself is tagged ``dict``). No class or module name is ever
stored: a class instance anywhere the default gave no class is refused at write, naming the key,
the path and the fix (``@persisted`` with an annotation).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import decimal
import math
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import orjson

from ..errors import DecodeError, EncodeError, OversizeError, UnsupportedTypeError
from .compile import compile_type
from .nodes import INT_MAX, INT_MIN, MAX_DEPTH, Budget, Mismatch, Oversize, key_segment, too_deep
from .type_codec import parse_json

__all__ = ["MARKER", "UntypedCodec", "untyped_codec"]

#: The reserved key of a tagged value: ``{"$sp": kind, "v": value}``.
MARKER = "$sp"
VALUE = "v"
_MARKER_BYTES = b'"' + MARKER.encode() + b'"'
#: A value of a rooted codec that is not of the default's type: ``{"$sp": "other", "v": ...}``.
OTHER = "other"
#: Defaults whose type says nothing a value does not say itself: no root codec.
_SELF_DESCRIBED = frozenset({type(None), bool, int, float, str, list, dict, tuple, set, frozenset})
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_INT_TEXT = re.compile(r"-?[0-9]+")


def _fix(key: str) -> str:
    return (
        f"declare it typed: @persisted(key={key!r}, version=1) over a default factory annotated with "
        "the value's type"
    )


class UntypedCodec:
    """The codec of one ``persist=True`` reactive: its default's class through that class's codec, the
    rest self-described. ``type`` is the default's type."""

    __slots__ = ("_root", "key", "type")

    def __init__(self, key: str, tp: type, root: Any) -> None:
        self.key = key
        self.type = tp
        #: The codec of values of exactly ``tp`` (``dumps``/``structure``), or None.
        self._root = root

    def __repr__(self) -> str:
        return f"UntypedCodec({self.key!r}, default {self.type.__qualname__})"

    def dumps(self, value: Any, *, max_bytes: int | None = None) -> bytes:
        """Compact UTF-8 JSON of ``value``; ``EncodeError`` (key, path, fix) for what has no JSON form here."""
        root = self._root
        if root is not None and type(value) is self.type:
            return root.dumps(value, max_bytes=max_bytes)
        tree = _Writer(self.key, max_bytes).tree(value, "")
        if root is not None:
            tree = {MARKER: OTHER, VALUE: tree}
        return _write(self.key, tree, max_bytes)

    def loads(self, data: bytes) -> Any:
        """Strictly decode bytes written by ``dumps``; ``DecodeError`` on anything else."""
        tree = self.parse(data)
        if self._root is None and _MARKER_BYTES not in data:
            return tree  # nothing tagged (the usual case): the tree is the value, no walk needed
        return self.structure(tree)

    def parse(self, data: bytes) -> Any:
        """The JSON tree of stored bytes, refused if it repeats an object key or nests past ``MAX_DEPTH``."""
        return parse_json(self.key, data, True)

    def structure(self, tree: Any) -> Any:
        """The value of a parsed tree."""
        root = self._root
        if root is None:
            return _read(self.key, tree, "")
        if type(tree) is dict and MARKER in tree:
            if tree.get(MARKER) != OTHER or len(tree) != 2 or VALUE not in tree:
                raise DecodeError(
                    self.key, "", f"expected a value of {self.type.__qualname__} or a tagged other"
                )
            return _read(self.key, tree[VALUE], "")
        return root.structure(tree)


def untyped_codec(key: str, default: Any) -> UntypedCodec:
    """The codec of a ``persist=True`` reactive whose default is ``default``."""
    tp = type(default)
    if tp in _SELF_DESCRIBED:
        return UntypedCodec(key, tp, None)
    base_model = _pydantic_base_model()
    if base_model is not None and isinstance(default, base_model):
        return UntypedCodec(key, tp, _PydanticRoot(key, tp))
    try:
        return UntypedCodec(key, tp, compile_type(tp, key=key))
    except UnsupportedTypeError:
        if attrs.has(tp) or dataclasses.is_dataclass(tp):
            return UntypedCodec(key, tp, _FieldsRoot(key, tp))
        return UntypedCodec(key, tp, None)  # no JSON form: its instances are refused at write


def _pydantic_base_model() -> type | None:
    # pydantic is not a dependency: a default can only be a model if pydantic is imported already.
    pydantic = sys.modules.get("pydantic")
    return getattr(pydantic, "BaseModel", None)


def _write(key: str, tree: Any, max_bytes: int | None) -> bytes:
    try:
        payload = orjson.dumps(tree)
    except TypeError as exc:  # a lone surrogate in a string
        raise EncodeError(key, "", f"cannot be written as JSON: {exc}") from None
    if max_bytes is not None and len(payload) > max_bytes:
        raise OversizeError(key, "", len(payload), max_bytes, exact=True)
    return payload


# --------------------------------------------------------------------------- roots


class _FieldsRoot:
    """The default's attrs class or dataclass whose annotations have no JSON form (``Any``, a bare
    ``list``): its ``__init__`` fields, each self-described, and ``cls(**fields)`` on the way back."""

    __slots__ = ("cls", "fields", "key")

    def __init__(self, key: str, cls: type) -> None:
        self.key = key
        self.cls = cls
        if attrs.has(cls):
            self.fields = tuple(attribute.name for attribute in attrs.fields(cls) if attribute.init)
        else:
            self.fields = tuple(field.name for field in dataclasses.fields(cls) if field.init)

    def dumps(self, value: Any, *, max_bytes: int | None = None) -> bytes:
        writer = _Writer(self.key, max_bytes)
        tree = {name: writer.tree(getattr(value, name), "." + name) for name in self.fields}
        return _write(self.key, tree, max_bytes)

    def structure(self, tree: Any) -> Any:
        if type(tree) is not dict:
            raise DecodeError(self.key, "", f"expected an object for {self.cls.__qualname__}")
        values = {name: _read(self.key, item, "." + name) for name, item in tree.items()}
        try:
            return self.cls(**values)
        except (TypeError, ValueError) as exc:
            raise DecodeError(
                self.key, "", f"{self.cls.__qualname__}(...) refused the stored fields: {exc}"
            ) from None


class _PydanticRoot:
    """The default's pydantic model: its own JSON mode (``model_dump(mode="json")``, ``model_validate``)."""

    __slots__ = ("cls", "key")

    def __init__(self, key: str, cls: type) -> None:
        self.key = key
        self.cls = cls

    def dumps(self, value: Any, *, max_bytes: int | None = None) -> bytes:
        try:
            tree = value.model_dump(mode="json")
        except ValueError as exc:  # pydantic's serialization errors
            raise EncodeError(
                self.key, "", f"{self.cls.__qualname__} cannot be written as JSON: {exc}"
            ) from None
        return _write(self.key, tree, max_bytes)

    def structure(self, tree: Any) -> Any:
        try:
            return self.cls.model_validate(tree)  # type: ignore[attr-defined]
        except ValueError as exc:  # pydantic.ValidationError
            raise DecodeError(
                self.key, "", f"{self.cls.__qualname__} refused the stored value: {exc}"
            ) from None


# --------------------------------------------------------------------------- self-described values


class _Writer:
    """One encode: the JSON tree of a value, refused at the first thing with no JSON form here.

    With ``max_bytes``, a running lower bound of the payload (a string's characters, two bytes a
    container) stops a value far over the cap after about cap-many bytes of work.
    """

    __slots__ = ("budget", "key")

    def __init__(self, key: str, max_bytes: int | None) -> None:
        self.key = key
        self.budget = Budget(max_bytes) if max_bytes is not None else None

    def tree(self, value: Any, path: str) -> Any:
        try:
            return self._unstructure(value, 0)
        except Oversize as oversize:
            assert self.budget is not None
            raise OversizeError(
                self.key, path + oversize.path(), oversize.size, self.budget.limit, exact=False
            ) from None
        except Mismatch as mismatch:
            inner, problem = mismatch.describe()
            raise EncodeError(self.key, path + inner, problem) from None

    def _unstructure(self, value: Any, depth: int) -> Any:
        value_type = type(value)
        budget = self.budget
        if value_type is str:
            if budget is not None:
                budget.take(len(value) + 2)
            return value
        if value is None or value_type is bool:
            return value
        if value_type is int:
            return value if INT_MIN <= value <= INT_MAX else self._tag("int", _int_text(value))
        if value_type is float:
            return (
                value
                if math.isfinite(value)
                else self._tag("float", "nan" if value != value else ("inf" if value > 0 else "-inf"))
            )
        if depth >= MAX_DEPTH:
            raise too_deep()
        if budget is not None:
            budget.take(2)
        if value_type is list:
            return self._items(value, depth + 1)
        if value_type is dict:
            out = {}
            for name, item in value.items():
                if type(name) is not str:
                    raise Mismatch(
                        f"a dict key of type {type(name).__qualname__} ({name!r}): JSON object keys are "
                        "strings; convert the keys to str"
                    )
                try:
                    out[name] = self._unstructure(item, depth + 1)
                except Mismatch as mismatch:
                    mismatch.push(key_segment(name), value)
                    raise
            return {MARKER: "dict", VALUE: out} if MARKER in out else out
        if value_type is tuple:
            return self._tag("tuple", self._items(value, depth + 2))
        if value_type is set or value_type is frozenset:
            return self._tag(value_type.__name__, self._items(value, depth + 2))
        text = _TEXT.get(value_type)
        if text is not None:
            kind, form = text
            return self._tag(kind, form(value))
        coerced = _numpy_scalar(value)
        if coerced is not None:
            return self._unstructure(coerced, depth)
        raise Mismatch(
            f"{value_type.__qualname__} has no JSON form here: persist=True stores no class name, so only an "
            f"instance of the default's own class can be stored; {_fix(self.key)}"
        )

    def _items(self, items: Any, depth: int) -> list[Any]:
        out = []
        unstructure = self._unstructure
        for i, item in enumerate(items):
            try:
                out.append(unstructure(item, depth))
            except Mismatch as mismatch:
                mismatch.push(f"[{i}]", items)
                raise
        return out

    def _tag(self, kind: str, value: Any) -> dict[str, Any]:
        if self.budget is not None:
            self.budget.take(len(kind) + 14)
        return {MARKER: kind, VALUE: value}


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # past Python's int -> str digit limit
        raise Mismatch("an integer too long to write as text") from None


def _iso(value: dt.datetime | dt.time) -> str:
    offset = value.utcoffset()
    if offset is not None and offset.microseconds:
        # Python's fromisoformat misreads some such offsets (e.g. +00:00:00.000001 as UTC).
        raise Mismatch(f"the timezone offset {offset} has a fraction of a second; use whole seconds")
    return value.isoformat()


def _bytes_text(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


#: Exact type -> (tag, its text form): the scalars JSON lacks, each stored as a string.
_TEXT: dict[type, tuple[str, Callable[[Any], str]]] = {
    dt.datetime: ("datetime", _iso),
    dt.date: ("date", dt.date.isoformat),
    dt.time: ("time", _iso),
    uuid.UUID: ("uuid", str),
    decimal.Decimal: ("decimal", str),
    bytes: ("bytes", _bytes_text),
}


def _numpy_scalar(value: Any) -> Any:
    """A numpy integer, float or bool as the Python number it holds (as Solara's own codec does), else None."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    if isinstance(value, numpy.bool_):
        return bool(value)
    if isinstance(value, numpy.integer):
        return int(value)
    if isinstance(value, numpy.floating):
        return float(value)
    return None


def _from_int(text: str) -> int:
    if not _INT_TEXT.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _from_float(text: str) -> float:
    return _NON_FINITE[text]


def _from_decimal(text: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(text) from None


def _from_bytes(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


#: Tag -> how its string form is read back.
_FROM_TEXT: dict[str, Callable[[str], Any]] = {
    "int": _from_int,
    "float": _from_float,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": _from_decimal,
    "bytes": _from_bytes,
}
_COLLECTIONS: dict[str, Callable[[list[Any]], Any]] = {"tuple": tuple, "set": set, "frozenset": frozenset}


def _read(key: str, tree: Any, path: str) -> Any:
    """The value of a decoded tree: plain JSON as it is, tagged kinds rebuilt; ``DecodeError`` names the path."""
    tree_type = type(tree)
    if tree_type is list:
        return [_read(key, item, f"{path}[{i}]") for i, item in enumerate(tree)]
    if tree_type is not dict:
        return tree
    if MARKER not in tree:
        return {name: _read(key, item, path + key_segment(name)) for name, item in tree.items()}
    kind, value = tree.get(MARKER), tree.get(VALUE)
    if len(tree) != 2 or VALUE not in tree or type(kind) is not str:
        raise DecodeError(key, path, f'a tagged value must be exactly {{"{MARKER}": kind, "{VALUE}": value}}')
    if kind == "dict" and type(value) is dict:
        return {name: _read(key, item, path + key_segment(name)) for name, item in value.items()}
    build = _COLLECTIONS.get(kind)
    if build is not None and type(value) is list:
        items = [_read(key, item, f"{path}[{i}]") for i, item in enumerate(value)]
        try:
            return build(items)
        except TypeError:  # an unhashable item for a set
            raise DecodeError(key, path, f"a {kind} holds an unhashable item") from None
    from_text = _FROM_TEXT.get(kind)
    if from_text is not None and type(value) is str:
        try:
            return from_text(value)
        except (ValueError, KeyError, binascii.Error):
            raise DecodeError(key, path, f"{value[:64]!r} is not a stored {kind}") from None
    raise DecodeError(key, path, f"unknown tagged value {kind!r} holding JSON {type(value).__name__}")
