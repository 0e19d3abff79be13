"""The JSON codec: faithful round trips through the declared type, strict restores, clean refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
import sys
import tracemalloc
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any, Generic, Literal, Optional, TypeVar, Union

import attrs
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solara_persisted.codec import (
    INT_MAX,
    INT_MIN,
    MAX_DEPTH,
    PickleTypeCodec,
    TypeCodec,
    compile_type,
    converter,
    type_codec,
)
from solara_persisted.errors import DecodeError, EncodeError, OversizeError, UnsupportedTypeError

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    VIEW = "view"
    EDIT = "edit"


class Perm(enum.Flag):
    READ = 1
    WRITE = 2


class Shape(enum.Enum):
    POINT = (0, 0)


@attrs.frozen
class Line:
    sku: str
    qty: int
    price: Decimal


@dataclasses.dataclass
class Cart:
    owner: uuid.UUID
    lines: list[Line]
    created: dt.datetime
    tags: set[str]
    level: Level
    mode: Mode
    note: str | None = None
    size: tuple[float, float] = (0.0, 0.0)
    blob: bytes = b""


@attrs.define
class Node:
    value: int
    children: list[Node] = attrs.Factory(list)


@attrs.define
class Circle:
    kind: Literal["circle"]
    radius: float


@attrs.define
class Square:
    kind: Literal["square"]
    side: float


@attrs.define
class Point2:
    x: int
    y: int


@attrs.define
class Point3:
    x: int
    y: int
    z: int


@attrs.define
class Celsius:
    degrees: float


@attrs.define
class Fahrenheit:
    degrees: float


@attrs.define
class AccountV1:
    name: str
    balance: Decimal


@attrs.define
class RenamedAccount:
    name: str
    balance: Decimal


@dataclasses.dataclass
class Order:
    items: list[Line]
    by_name: dict[str, int]


@attrs.define
class Validated:
    qty: int = attrs.field(validator=attrs.validators.ge(0))


@attrs.define
class Private:
    _pin: int
    label: str = attrs.field(default="x", alias="title")
    derived: int = attrs.field(init=False, default=0)


@attrs.define
class WithCl:
    cl: int
    converter: str


T = TypeVar("T")


@attrs.define
class Box(Generic[T]):
    item: T


# --------------------------------------------------------------------------- strategies

_offsets = st.builds(
    dt.timezone,
    st.integers(-(24 * 3600 - 60), 24 * 3600 - 60).map(lambda seconds: dt.timedelta(seconds=seconds)),
)
_tz = st.none() | _offsets

SCALARS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (int, st.integers(INT_MIN, INT_MAX)),
    (float, st.floats(allow_nan=False, allow_infinity=False)),
    (str, st.text()),
    (bool, st.booleans()),
    (type(None), st.none()),
    (dt.datetime, st.datetimes(timezones=_tz)),
    (dt.date, st.dates()),
    (dt.time, st.times(timezones=_tz)),
    (uuid.UUID, st.uuids()),
    (Decimal, st.decimals(allow_nan=False, allow_infinity=False)),
    (bytes, st.binary(max_size=40)),
    (Color, st.sampled_from(Color)),
    (Level, st.sampled_from(Level)),
    (Mode, st.sampled_from(Mode)),
    (Literal["a", 1, True, None], st.sampled_from(["a", 1, True, None])),
]


def _extend(inner: st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]]) -> st.SearchStrategy[Any]:
    def containers(pair: tuple[Any, st.SearchStrategy[Any]]) -> st.SearchStrategy[tuple[Any, Any]]:
        tp, values = pair
        return st.sampled_from(
            [
                (list[tp], st.lists(values, max_size=4)),
                (tuple[tp, ...], st.lists(values, max_size=4).map(tuple)),
                (dict[str, tp], st.dictionaries(st.text(max_size=5), values, max_size=4)),
                (Optional[tp], st.none() | values),  # noqa: UP045 - the typing spelling is supported too
                (tuple[tp, int], st.tuples(values, st.integers(INT_MIN, INT_MAX))),
            ]
        )

    return inner.flatmap(containers)


_set_types = st.sampled_from(SCALARS).flatmap(
    lambda pair: st.sampled_from(
        [
            (set[pair[0]], st.sets(pair[1], max_size=5)),
            (frozenset[pair[0]], st.frozensets(pair[1], max_size=5)),
        ]
    )
)
TYPES = st.recursive(st.sampled_from(SCALARS) | _set_types, _extend, max_leaves=4)


def same(a: Any, b: Any) -> bool:
    """Equal AND of the same type all the way down (and exact for Decimal and aware datetimes)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (set, frozenset)):
        return a == b and all(any(same(x, y) for y in b) for x in a)
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and a.utcoffset() == b.utcoffset()
    if dataclasses.is_dataclass(a) or attrs.has(type(a)):
        return a == b and all(same(getattr(a, f), getattr(b, f)) for f in _field_names(a))
    return bool(a == b)


def _field_names(obj: Any) -> list[str]:
    if attrs.has(type(obj)):
        return [f.name for f in attrs.fields(type(obj))]
    return [f.name for f in dataclasses.fields(obj)]


def roundtrip(tp: Any, value: Any) -> tuple[bytes, Any]:
    codec = compile_type(tp, key="test.key")
    data = codec.dumps(value)
    return data, codec.loads(data)


# --------------------------------------------------------------------------- round trips


@PROPERTY
@given(st.data())
def test_random_types_round_trip_with_type_preserved(data: st.DataObject) -> None:
    tp, values = data.draw(TYPES)
    value = data.draw(values)
    codec = compile_type(tp, key="prop")
    encoded = codec.dumps(value)
    back = codec.loads(encoded)
    assert same(back, value), (tp, value, back)
    assert codec.dumps(back) == encoded
    jsonschema.Draft202012Validator(codec.json_schema()).validate(json.loads(encoded))


_lines = st.builds(
    Line,
    sku=st.text(max_size=8),
    qty=st.integers(INT_MIN, INT_MAX),
    price=st.decimals(allow_nan=False, allow_infinity=False, places=2),
)
_carts = st.builds(
    Cart,
    owner=st.uuids(),
    lines=st.lists(_lines, max_size=3),
    created=st.datetimes(timezones=_tz),
    tags=st.sets(st.text(max_size=4), max_size=3),
    level=st.sampled_from(Level),
    mode=st.sampled_from(Mode),
    note=st.none() | st.text(max_size=10),
    size=st.tuples(
        st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False)
    ),
    blob=st.binary(max_size=10),
)


@PROPERTY
@given(_carts)
def test_nested_attrs_and_dataclasses_round_trip(cart: Cart) -> None:
    data, back = roundtrip(Cart, cart)
    assert same(back, cart)
    assert b"Cart" not in data and b"Line" not in data and b"__main__" not in data


@PROPERTY
@given(st.lists(_lines, max_size=3), st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=3))
def test_dataclass_of_attrs_classes_validates_against_its_schema(
    items: list[Line], by_name: dict[str, int]
) -> None:
    codec = compile_type(Order, key="order")
    order = Order(items, by_name)
    jsonschema.Draft202012Validator(codec.json_schema()).validate(json.loads(codec.dumps(order)))
    assert same(codec.loads(codec.dumps(order)), order)


@PROPERTY
@given(st.sets(st.integers(-50, 50)), st.randoms())
def test_set_bytes_do_not_depend_on_insertion_order(items: set[int], rnd: Any) -> None:
    ordered = list(items)
    rnd.shuffle(ordered)
    codec = compile_type(set[int], key="s")
    assert codec.dumps(set(ordered)) == codec.dumps(items)
    assert json.loads(codec.dumps(items)) == sorted(items)


def test_sets_of_unorderable_elements_are_still_deterministic() -> None:
    codec = compile_type(set[int | None], key="s")
    assert codec.dumps({None, 3, 1}) == codec.dumps({1, None, 3})
    assert codec.loads(codec.dumps({None, 3, 1})) == {None, 1, 3}


def test_recursive_class_round_trips() -> None:
    tree = Node(1, [Node(2), Node(3, [Node(4)])])
    _, back = roundtrip(Node, tree)
    assert back == tree


def test_union_of_classes_is_told_apart_by_a_literal_tag() -> None:
    for shape in (Circle("circle", 1.5), Square("square", 2.0)):
        data, back = roundtrip(Union[Circle, Square], shape)  # noqa: UP007 - the typing spelling works too
        assert same(back, shape)
        assert b"Circle" not in data and b"Square" not in data


def test_union_of_classes_is_told_apart_by_a_unique_field() -> None:
    for point in (Point2(1, 2), Point3(1, 2, 3), None):
        _, back = roundtrip(Point2 | Point3 | None, point)
        assert same(back, point)


def test_int_and_float_members_keep_their_type() -> None:
    for value in (3, 3.0, -0.0):
        _, back = roundtrip(int | float, value)
        assert same(back, value)


def test_an_int_is_a_float_where_a_float_is_declared() -> None:
    codec = compile_type(float, key="f")
    assert codec.dumps(3) == b"3.0"
    assert same(codec.loads(b"3"), 3.0)
    assert same(compile_type(list[float], key="f").loads(b"[1,2.5]"), [1.0, 2.5])


def test_zoneinfo_datetime_keeps_its_instant_and_offset() -> None:
    when = dt.datetime(2024, 3, 31, 2, 30, tzinfo=zoneinfo.ZoneInfo("Asia/Kolkata"))
    data, back = roundtrip(dt.datetime, when)
    assert data == b'"2024-03-31T02:30:00+05:30"'
    assert back == when and back.utcoffset() == when.utcoffset()
    _, naive = roundtrip(dt.datetime, dt.datetime(2024, 1, 1, 12))
    assert naive.tzinfo is None


def test_decimal_is_exact() -> None:
    for text in ("1.10", "-0", "1E+3", "1E-30", "123456789012345678901234567890.5"):
        data, back = roundtrip(Decimal, Decimal(text))
        assert str(back) == text and data == f'"{text}"'.encode()


def test_int_range_edges_round_trip() -> None:
    for value in (INT_MIN, INT_MAX, 0, -1):
        _, back = roundtrip(int, value)
        assert same(back, value)


def test_a_renamed_class_restores_from_the_old_payload() -> None:
    data = compile_type(AccountV1, key="acct").dumps(AccountV1("ada", Decimal("10.50")))
    back = compile_type(RenamedAccount, key="acct").loads(data)
    assert same(back, RenamedAccount("ada", Decimal("10.50")))


def test_private_aliased_and_init_false_fields() -> None:
    value = Private(pin=1234, title="card")
    value.derived = 9
    data, back = roundtrip(Private, value)
    assert data == b'{"_pin":1234,"label":"card"}'
    assert same(back, Private(pin=1234, title="card"))


def test_fields_named_like_cattrs_parameters_work() -> None:
    _, back = roundtrip(WithCl, WithCl(1, "x"))
    assert same(back, WithCl(1, "x"))
    with pytest.raises(DecodeError) as info:
        compile_type(WithCl, key="k").loads(b'{"cl":"1","converter":"x"}')
    assert info.value.path == ".cl"


def test_scalars_encode_to_plain_compact_json() -> None:
    codec = compile_type(int, key="n")
    assert codec.dumps(3) == b"3"
    assert compile_type(str, key="s").dumps("é\n") == '"é\\n"'.encode()
    assert compile_type(Optional[int], key="o").dumps(None) == b"null"  # noqa: UP045


# --------------------------------------------------------------------------- write-time errors


def _encode_error(tp: Any, value: Any) -> EncodeError:
    with pytest.raises(EncodeError) as info:
        compile_type(tp, key="shop.cart").dumps(value)
    return info.value


def test_encode_error_names_key_and_path_inside_the_value() -> None:
    order = Order(
        [Line("a", 1, Decimal(1)), Line("b", 2, Decimal(2)), Line("c", 3, Decimal(3)), Line("d", 4, 4.5)], {}
    )
    error = _encode_error(Order, order)
    assert (error.key, error.path) == ("shop.cart", ".items[3].price")
    assert "expected Decimal, got float" in error.problem
    assert "shop.cart.items[3].price" in str(error)
    error = _encode_error(dict[str, list[int]], {"ok": [1], "name": [1, "2"]})
    assert error.path == '["name"][1]'
    assert _encode_error(dict[str, int], {1: 2}).problem.startswith("dict keys must be str")
    assert _encode_error(int, "3").path == ""


@pytest.mark.parametrize(
    ("tp", "value", "problem"),
    [
        (int, True, "expected int, got bool"),
        (int, 3.0, "expected int, got float"),
        (int, 2**64, "outside the 64-bit integer range"),
        (list[int], [1, 2**70], "outside the 64-bit integer range"),
        (float, "1.5", "expected float, got str"),
        (float, float("nan"), "not a finite number"),
        (float, float("inf"), "not a finite number"),
        (float, 10**400, "too large for a float"),
        (list[float], [1.0, float("-inf")], "not a finite number"),
        (dict[str, float], {"a": float("nan")}, "not a finite number"),
        (Decimal, Decimal("NaN"), "not finite"),
        (str, b"x", "expected str, got bytes"),
        (bytes, bytearray(b"x"), "expected bytes, got bytearray"),
        (dt.date, dt.datetime(2024, 1, 1), "expected date, got datetime"),
        (dt.time, dt.time(tzinfo=dt.timezone(dt.timedelta(microseconds=1))), "fraction of a second"),
        (tuple[int, ...], [1, 2], "expected tuple[int, ...], got list"),
        (tuple[int, str], (1,), "2 items"),
        (set[int], [1], "expected set[int], got list"),
        (Color, "red", "expected Color"),
        (Literal[1], True, "expected Literal[1]"),
        (Line, Cart, "expected Line"),
        (Point2, Point3(1, 2, 3), "expected Point2, got Point3"),
        (int | str, 1.5, "expected int | str, got float"),
    ],
)
def test_values_that_do_not_fit_are_refused_at_write(tp: Any, value: Any, problem: str) -> None:
    assert problem in _encode_error(tp, value).problem


def test_cycles_are_refused_cleanly() -> None:
    loop = Node(1)
    loop.children.append(Node(2, [loop]))
    error = _encode_error(Node, loop)
    assert "cycle" in error.problem and "refers back to the value itself" in error.problem
    assert error.path == ".children[0].children[0]"


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    depth = sys.getrecursionlimit() * 2
    root = Node(0)
    tip = root
    for i in range(depth):
        tip.children.append(Node(i))
        tip = tip.children[0]
    error = _encode_error(Node, root)
    assert f"deeper than {MAX_DEPTH} levels" in error.problem
    shallow = Node(0)
    tip = shallow
    for i in range(MAX_DEPTH // 2 - 1):
        tip.children.append(Node(i))
        tip = tip.children[0]
    assert compile_type(Node, key="k").loads(compile_type(Node, key="k").dumps(shallow)) == shallow


def test_lone_surrogates_are_refused() -> None:
    assert "UTF-8" in _encode_error(list[str], ["ok", "\ud800"]).problem


def test_check_validates_without_encoding() -> None:
    codec = compile_type(list[int], key="k")
    codec.check([1, 2])
    with pytest.raises(EncodeError):
        codec.check([1, 2**64])


# --------------------------------------------------------------------------- strict restores


@pytest.mark.parametrize(
    ("tp", "data", "path", "problem"),
    [
        (int, b'"3"', "", "expected integer, got JSON string"),
        (int, b"3.0", "", "expected integer, got JSON number"),
        (int, b"3.7", "", "expected integer, got JSON number"),
        (int, b"true", "", "expected integer, got JSON boolean"),
        (bool, b"1", "", "expected boolean, got JSON integer"),
        (str, b"1", "", "expected string, got JSON integer"),
        (float, b'"1.5"', "", "expected number, got JSON string"),
        (float, b"NaN", "", "not valid JSON"),
        (float, b"1e999", "", "not valid JSON"),
        (type(None), b"0", "", "expected null"),
        (list[int], b'[1,"2"]', "[1]", "expected integer"),
        (list[int], b'{"a":1}', "", "expected array, got JSON object"),
        (tuple[int, str], b"[1]", "", "2 items"),
        (dict[str, int], b'{"a":1,"b":null}', '["b"]', "expected integer, got JSON null"),
        (dt.datetime, b'"yesterday"', "", "is not an ISO 8601 datetime"),
        (dt.datetime, b"1700000000", "", "expected a string holding an ISO 8601 datetime"),
        (uuid.UUID, b'"not-a-uuid"', "", "is not a UUID"),
        (Decimal, b'" 1.5"', "", "is not a decimal number"),
        (Decimal, b'"1_000"', "", "is not a decimal number"),
        (bytes, b'"@@@"', "", "is not base64 data"),
        (Color, b'"blue"', "", "expected Color"),
        (Level, b'"1"', "", "expected Level"),
        (Level, b"true", "", "expected Level"),
        (Literal[1], b"true", "", "expected Literal[1]"),
        (Line, b'{"sku":"a","qty":1}', ".price", "missing required field of Line"),
        (Line, b'{"sku":"a","qty":1,"price":"1","extra":2}', "", "unexpected field(s) 'extra'"),
        (Line, b"[]", "", "expected object for Line, got JSON array"),
        (
            Order,
            b'{"items":[{"sku":"a","qty":"1","price":"1"}],"by_name":{}}',
            ".items[0].qty",
            "expected integer",
        ),
        (Point2 | Point3, b'{"q":1}', "", "the stored object matches no member of Point2 | Point3"),
        (int | str, b"1.5", "", "expected int | str, got JSON number"),
        (Validated, b'{"qty":-1}', "", "refused the stored fields"),
        (int, b"\xff", "", "not valid JSON"),
        (list[int], b"[" * 5000, "", "not valid JSON"),
    ],
)
def test_restores_are_strict(tp: Any, data: bytes, path: str, problem: str) -> None:
    with pytest.raises(DecodeError) as info:
        compile_type(tp, key="k").loads(data)
    assert info.value.path == path
    assert problem in info.value.problem


def test_structure_and_unstructure_are_the_json_tree_halves() -> None:
    codec = compile_type(dict[str, tuple[int, ...]], key="k")
    assert codec.unstructure({"a": (1, 2)}) == {"a": [1, 2]}
    assert codec.structure({"a": [1, 2]}) == {"a": (1, 2)}
    with pytest.raises(DecodeError):
        codec.structure({"a": [1, "2"]})


def test_the_module_converter_is_strict_too() -> None:
    assert converter.structure([1, 2], tuple[int, ...]) == (1, 2)
    assert converter.unstructure({2, 1}, set[int]) == [1, 2]
    with pytest.raises(DecodeError):
        converter.structure("3", int)
    with pytest.raises(DecodeError):
        converter.structure({"sku": "a", "qty": 1.5, "price": "1"}, Line)


# --------------------------------------------------------------------------- declaration-time refusals


@pytest.mark.parametrize(
    ("tp", "problem"),
    [
        (Any, "Any says nothing about the stored shape"),
        (object, "object says nothing about the stored shape"),
        (list[Any], "Any says nothing"),
        (dict[int, str], "dict key type int in dict[int, str]: JSON object keys are strings"),
        (list, "bare list has no item type"),
        (dict, "bare dict"),
        (tuple, "bare tuple"),
        (set[list[int]], "list[int] in set[list[int]] is not hashable"),
        (int | Level, "Level and int in int | Level are both stored as JSON numbers"),
        (str | dt.datetime, "str and datetime in str | datetime are all stored as JSON strings"),
        (list[int] | tuple[int, ...], "are all stored as JSON arrays"),
        (dict[str, int] | Line, "mixes a dict with other JSON objects"),
        (Celsius | Fahrenheit, "cannot be told apart from their stored fields"),
        (Color | Literal["red"], "both store the value 'red'"),
        (Perm, "flag enum Perm"),
        (Shape, "has no exact JSON form"),
        (Literal[b"x"], "has no exact JSON form"),
        (Box, "Box is generic"),
        (Box[int], "parametrised generic class"),
        (complex, "complex has no JSON form"),
        ("Missing", "unresolved forward reference 'Missing'"),
    ],
)
def test_unrepresentable_types_are_refused_at_declaration(tp: Any, problem: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        compile_type(tp, key="k", site="app.py:3")
    message = str(info.value)
    assert problem in message
    assert message.startswith("app.py:3: ")
    assert info.value.fix


def test_a_refused_recursive_class_leaves_nothing_half_built() -> None:
    @attrs.define
    class Bad:
        children: list[Bad]
        extra: complex

    globals()["Bad"] = Bad
    try:
        for _ in range(2):
            with pytest.raises(UnsupportedTypeError, match=r"field .*Bad\.extra"):
                compile_type(list[Bad], key="k")
    finally:
        del globals()["Bad"]


def test_optional_literal_with_none_is_not_ambiguous() -> None:
    for value in ("a", None):
        _, back = roundtrip(Literal["a", None] | None, value)
        assert back == value


# --------------------------------------------------------------------------- json schema


def test_json_schema_is_closed_and_formatted() -> None:
    schema = compile_type(Cart, key="k").json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    cart = schema["$defs"]["Cart"]
    assert cart["additionalProperties"] is False
    assert cart["required"] == ["owner", "lines", "created", "tags", "level", "mode"]
    assert cart["properties"]["owner"] == {"type": "string", "format": "uuid"}
    assert schema["$defs"]["Line"]["additionalProperties"] is False
    jsonschema.Draft202012Validator.check_schema(schema)
    recursive = compile_type(Node, key="k").json_schema()
    assert recursive["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}


# --------------------------------------------------------------------------- pickle


@attrs.define
class Anything:
    payload: Any


def test_pickle_codec_round_trips_what_json_cannot() -> None:
    codec = PickleTypeCodec("legacy", Anything)
    value = Anything({1: complex(1, 2), "s": {frozenset({1})}})
    assert codec.loads(codec.dumps(value)) == value


def test_pickle_codec_errors_are_codec_errors() -> None:
    codec = PickleTypeCodec("legacy", Any)
    with pytest.raises(EncodeError, match="cannot be pickled"):
        codec.dumps(lambda: 0)
    with pytest.raises(DecodeError, match="cannot be unpickled"):
        codec.loads(b"not a pickle")


def test_type_codec_repr_names_key_and_type() -> None:
    assert repr(compile_type(list[int], key="k")) == "TypeCodec('k', list[int])"
    assert isinstance(compile_type(int, key="k"), TypeCodec)


# --------------------------------------------------------------------------- size caps

CAP = 1_000_000


def _refusal_cost(build: Any, encode: Any) -> tuple[int, int, OversizeError]:
    """The traced size of the value ``build`` makes, the most traced memory above it while ``encode``
    refuses it, and the refusal."""
    tracemalloc.start()
    try:
        value = build()
        own = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        with pytest.raises(OversizeError) as info:
            encode(value)
        extra = tracemalloc.get_traced_memory()[1] - own
    finally:
        tracemalloc.stop()
    return own, extra, info.value


_BIG_VALUES = {
    "one 50 MB str": (str, lambda: "x" * 50_000_000),
    "500k strings of 100 chars": (list[str], lambda: [f"{i:0100d}" for i in range(500_000)]),
    "10k strings of 5000 chars": (tuple[str, ...], lambda: tuple(f"{i:05000d}" for i in range(10_000))),
    "dict of 10 strings of 5 MB": (dict[str, str], lambda: {str(i): str(i) * 5_000_000 for i in range(10)}),
    "30 MB of bytes": (list[bytes], lambda: [bytes(30_000_000)]),
    "200k attrs objects": (list[Line], lambda: [Line(f"sku{i}", i, Decimal(i)) for i in range(200_000)]),
}


@pytest.mark.parametrize("case", list(_BIG_VALUES))
def test_an_oversize_value_is_refused_before_it_is_copied(case: str) -> None:
    tp, build = _BIG_VALUES[case]
    codec = compile_type(tp, key="big")
    own, extra, error = _refusal_cost(build, lambda value: codec.dumps(value, max_bytes=CAP))
    assert own > 20_000_000
    # Refused on a lower bound of the output, never after building it: a small fraction of the
    # value, bounded by the cap, where a plain encode reserves up to ten times the payload.
    assert extra < own / 10 and extra < 10 * CAP, (extra, own)
    assert isinstance(error, EncodeError) and error.key == "big"
    assert error.limit == CAP and CAP < error.size <= len(codec.dumps(build())) and not error.exact
    assert f"over the limit of {CAP} bytes" in str(error)


def test_the_running_estimate_names_where_it_passed_the_cap() -> None:
    codec = compile_type(Order, key="order")
    many = Order([Line(f"sku{i}", i, Decimal(1)) for i in range(100_000)], {})
    with pytest.raises(OversizeError) as info:
        codec.dumps(many, max_bytes=10_000)
    # Each Line takes at least 31 bytes ({"sku":"","qty":0,"price":"0"} and a comma): no item is visited.
    assert info.value.path == ".items"
    assert info.value.size == len('{"items":[],"by_name":{}}') + 100_000 * 31 - 1
    long_skus = Order([Line("x" * 100, i, Decimal(1)) for i in range(200)], {})
    with pytest.raises(OversizeError) as info:
        codec.dumps(long_skus, max_bytes=10_000)
    assert re.fullmatch(r"\.items\[\d+\]\.sku", info.value.path) and not info.value.exact
    assert int(info.value.path[len(".items[") : -len("].sku")]) < 50


@pytest.mark.parametrize("build", [lambda: "x" * 50_000_000, lambda: [f"{i:0100d}" for i in range(500_000)]])
def test_the_pickle_codec_refuses_an_oversize_value_as_it_writes(build: Any) -> None:
    codec = PickleTypeCodec("legacy", Any)
    own, extra, error = _refusal_cost(build, lambda value: codec.dumps(value, max_bytes=CAP))
    assert extra < own / 10 and extra < 10 * CAP, (extra, own)
    assert error.limit == CAP and error.size > CAP and not error.exact


@PROPERTY
@given(st.data())
def test_a_cap_refuses_exactly_the_payloads_longer_than_it(data: st.DataObject) -> None:
    tp, values = data.draw(TYPES)
    value = data.draw(values)
    codec = compile_type(tp, key="prop")
    encoded = codec.dumps(value)
    assert codec.dumps(value, max_bytes=len(encoded)) == encoded
    with pytest.raises(OversizeError) as info:
        codec.dumps(value, max_bytes=len(encoded) - 1)
    # Every estimate is a lower bound: it can only pass a cap below the payload by reaching it.
    assert info.value.size == len(encoded)
    pickled = PickleTypeCodec("prop", tp).dumps(value)
    assert PickleTypeCodec("prop", tp).dumps(value, max_bytes=len(pickled)) == pickled
    with pytest.raises(OversizeError):
        PickleTypeCodec("prop", tp).dumps(value, max_bytes=len(pickled) - 1)


@PROPERTY
@given(_carts)
def test_a_cap_on_the_checked_path_is_exact_too(cart: Cart) -> None:
    codec = compile_type(Cart, key="cart")
    encoded = codec.dumps(cart)
    assert codec.dumps(cart, max_bytes=len(encoded)) == encoded
    with pytest.raises(OversizeError) as info:
        codec.dumps(cart, max_bytes=len(encoded) - 1)
    assert info.value.size == len(encoded)


def test_a_value_that_does_not_fit_its_type_is_still_an_encode_error_under_a_cap() -> None:
    with pytest.raises(EncodeError) as info:
        compile_type(list[int], key="k").dumps([1, "2"], max_bytes=CAP)
    assert not isinstance(info.value, OversizeError) and info.value.path == "[1]"


# --------------------------------------------------------------------------- hardened restores


@pytest.mark.parametrize(
    ("tp", "data", "path"),
    [
        (dict[str, int], b'{"a":1,"a":2}', '["a"]'),
        (dict[str, int], b'{"a":1,"b":2,"a":3}', '["a"]'),
        (dict[str, int], b'{"a" : 1, "a" : 2}', '["a"]'),
        (dict[str, int], b'{"a":1,"\\u0061":2}', '["a"]'),
        (Line, b'{"sku":"a","qty":1,"price":"1","qty":2}', '["qty"]'),
        (list[dict[str, int]], b'[{"a":1},{"b":2,"b":2}]', '[1]["b"]'),
        (Order, b'{"items":[{"sku":"a","qty":1,"price":"1","sku":"b"}],"by_name":{}}', '["items"][0]["sku"]'),
        (dict[str, str], b'{"x":"a:b:c","x":"d"}', '["x"]'),
    ],
)
def test_a_repeated_object_key_is_refused_with_its_path(tp: Any, data: bytes, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        compile_type(tp, key="k").loads(data)
    assert info.value.path == path
    assert "repeats this key" in info.value.problem


def test_other_bytes_without_repeats_still_load() -> None:
    codec = compile_type(dict[str, dict[str, int]], key="k")
    assert codec.loads(b'{ "x" : { "a" : 1, "b" : 2 }, "y": {"\\u0061": 3} }') == {
        "x": {"a": 1, "b": 2},
        "y": {"a": 3},
    }


@PROPERTY
@given(st.data())
def test_the_writers_bytes_never_need_the_second_parse(data: st.DataObject) -> None:
    tp, values = data.draw(TYPES)
    codec = compile_type(tp, key="prop")
    encoded = codec.dumps(data.draw(values))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type_codec, "_refuse_duplicates", _unexpected_second_parse)
        codec.loads(encoded)


def _unexpected_second_parse(key: str, data: bytes) -> None:
    raise AssertionError(f"the writer's own bytes were parsed again: {data!r}")


def _nodes(levels: int, *, children: bool = True) -> bytes:
    """A stored Node chain ``levels`` JSON arrays and objects deep (an object and a list a Node)."""
    inner = b'{"value":0,"children":[]}' if children else b'{"value":0}'
    depth = 2 if children else 1
    while depth < levels:
        inner = b'{"value":0,"children":[' + inner + b"]}"
        depth += 2
    assert depth == levels, "levels must match the chain's parity"
    return inner


def test_a_recursive_type_refuses_a_document_deeper_than_max_depth() -> None:
    codec = compile_type(Node, key="k")
    assert isinstance(codec.loads(_nodes(MAX_DEPTH)), Node)
    for data in (_nodes(MAX_DEPTH + 1, children=False), _nodes(MAX_DEPTH + 2), _nodes(1001, children=False)):
        with pytest.raises(DecodeError) as info:
            codec.loads(data)
        assert info.value.problem == f"nesting deeper than {MAX_DEPTH} levels"
        assert info.value.path == '["children"][0]' * (MAX_DEPTH // 2)


def test_a_wide_document_at_max_depth_is_not_refused() -> None:
    root = Node(0)
    tip = root
    for _ in range(MAX_DEPTH // 2 - 1):
        tip.children.extend(Node(j) for j in range(5))
        tip = tip.children[-1]
    codec = compile_type(Node, key="k")
    data = codec.dumps(root)
    assert data.count(b"{") > MAX_DEPTH
    assert codec.loads(data) == root


def test_parse_checks_a_tree_for_a_migration_whatever_the_declared_type() -> None:
    codec = compile_type(int, key="k")  # the stored tree has another version's shape
    assert codec.parse(b'{"a":[1,{"b":2}]}') == {"a": [1, {"b": 2}]}
    with pytest.raises(DecodeError, match="repeats this key"):
        codec.parse(b'{"a":1,"a":2}')
    with pytest.raises(DecodeError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        codec.parse(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert codec.parse(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


def test_a_type_of_bounded_depth_refuses_a_deep_document_where_it_stops_fitting() -> None:
    with pytest.raises(DecodeError) as info:
        compile_type(list[list[int]], key="k").loads(b"[" * 1000 + b"]" * 1000)
    assert info.value.path == "[0][0]" and "expected integer, got JSON array" in info.value.problem
