"""Values <-> JSON bytes, always through the declared type.

A persisted value is checked against its declared type when it is written, and stored bytes are
structured back strictly when they are read: a restore either yields exactly what the type says
or raises ``DecodeError`` (no ``int("3")``, no float-to-int truncation, no class names in the
data). ``compile_type`` does all type analysis once per declaration and returns a ``TypeCodec``
whose hot paths are closures. JSON-native shapes (``int``, ``list[str]``, ``dict[str, float]``,
``list[dict[str, int | str]]``...) are checked with a few C-level passes and handed to orjson
as they are, which is what lets encode and restore run several times faster than Solara's
built-in engine. attrs classes and dataclasses are structured by cattrs-generated functions, and
unions of classes are told apart by cattrs' unique-field disambiguation, so a stored value never
names its class and renaming a class cannot break a restore.

Integers are limited to the 64-bit range, because orjson (like most JSON readers) reads larger
ones back as floats; use ``Decimal`` for bigger numbers.

Stored bytes and written values are both untrusted in size and shape. ``dumps(value, max_bytes=n)``
raises ``OversizeError`` for a payload over ``n`` bytes, deciding on a lower bound of the output
kept as the value is checked, before orjson (which reserves several times its output) or the JSON
tree of a class-based value costs memory. ``loads`` refuses a document whose objects repeat a key,
and, for a type that can nest without end (a recursive class), one nested deeper than
``MAX_DEPTH`` arrays and objects, the same limit values are written with.

The package, one module a concern: ``nodes`` (the compiled form of a type and everything the
other modules share), the node builders ``scalars``, ``value_sets`` (Literal, Enum),
``containers``, ``unions`` and ``classes``, ``compile`` (type -> node, memoised, and the one
``converter``), ``cattrs_converter`` (how that strict cattrs converter is built and hooked),
``type_codec`` (``TypeCodec``), ``untyped`` (``UntypedCodec``, for ``persist=True`` reactives) and
``pickle_codec`` (``PickleTypeCodec``).
"""

from __future__ import annotations

from .compile import compile_type, converter
from .nodes import INT_MAX, INT_MIN, MAX_DEPTH, type_name
from .pickle_codec import PickleTypeCodec
from .type_codec import TypeCodec

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_DEPTH",
    "PickleTypeCodec",
    "TypeCodec",
    "compile_type",
    "converter",
    "type_name",
]
