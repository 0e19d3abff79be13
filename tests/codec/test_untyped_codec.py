"""The untyped codec of persist=True reactives: exact round trips of every kind Solara's own codec keeps,
refusals that name the key, the path and the fix, and never a class or module name in the bytes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import uuid
from decimal import Decimal
from typing import Any

import attrs
import numpy
import orjson
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solara_persisted.codec import MAX_DEPTH
from solara_persisted.codec.untyped import MARKER, untyped_codec
from solara_persisted.errors import DecodeError, EncodeError, OversizeError

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
UTC = dt.timezone.utc


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Filters:
    category: str | None = None
    tags: frozenset[str] = frozenset()
    since: dt.datetime | None = None


@dataclasses.dataclass
class Line:
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Loose:
    """Annotations with no JSON form: stored field by field, each self-described."""

    items: list = dataclasses.field(default_factory=list)
    extra: Any = None


class Model(pydantic.BaseModel):
    name: str
    when: dt.datetime
    pair: tuple[int, str] = (0, "")
    tags: set[str] = set()
    line: Line | None = None


class Opaque:
    """A class with no JSON form at all."""


SELF_DESCRIBED = [
    None,
    True,
    0,
    -(2**63),
    2**64 - 1,
    2**80,  # past 64 bits: tagged, as JSON readers lose it
    -(2**70),
    1.5,
    -0.0,
    math.inf,
    -math.inf,
    "",
    "ünïcode ✓",
    [],
    [1, "a", None, [2.5]],
    {},
    {"a": {"b": [1, 2]}},
    (),
    (1, "a", (2, 3)),
    {1, 2, 3},
    frozenset({"x", "y"}),
    {(1, 2), frozenset({3})},
    dt.datetime(2024, 5, 1, 12, 30, 15, 123456),
    dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
    dt.date(2024, 2, 29),
    dt.time(23, 59, 59, 999999),
    dt.time(8, 0, tzinfo=UTC),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Decimal("12.50"),
    Decimal("-1E+3"),
    Decimal("NaN"),
    b"",
    b"\x00\xff binary",
    {MARKER: "tuple", "v": [1]},  # a plain dict that holds the reserved key itself
    {"outer": {MARKER: {MARKER: (1,)}}},
    [{"when": dt.date(2020, 1, 1), "ids": {uuid.UUID(int=1)}}, (Decimal("1"), b"x")],
]


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down (1 is not True, a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, Decimal) and a.is_nan():
        return b.is_nan()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b and (not isinstance(a, (dt.datetime, dt.time)) or a.tzinfo == b.tzinfo)


@pytest.mark.parametrize("value", SELF_DESCRIBED, ids=repr)
@pytest.mark.parametrize("default", [None, 0, "", [], {}, ()], ids=lambda d: type(d).__name__)
def test_every_kind_round_trips_exactly_whatever_the_plain_default(default: Any, value: Any) -> None:
    codec = untyped_codec("k", default)
    assert same(codec.loads(codec.dumps(value)), value)


def test_json_values_are_stored_as_plain_json_and_only_the_rest_is_tagged() -> None:
    codec = untyped_codec("k", [])
    assert codec.dumps([1, "a", {"b": None}]) == b'[1,"a",{"b":null}]'
    assert codec.dumps((1, 2)) == b'{"$sp":"tuple","v":[1,2]}'
    assert codec.dumps({MARKER: 1}) == b'{"$sp":"dict","v":{"$sp":1}}'
    assert codec.dumps(dt.date(2024, 1, 2)) == b'{"$sp":"date","v":"2024-01-02"}'


@pytest.mark.parametrize(
    ("default", "value"),
    [
        (Color.RED, Color.GREEN),
        (Level.LOW, Level.HIGH),
        (Filters(), Filters("shoes", frozenset({"sale"}), dt.datetime(2024, 1, 1, tzinfo=UTC))),
        (Line("a"), Line("b", 3)),
        (Loose(), Loose([(1, 2), {"x": {3}}], dt.date(2020, 1, 1))),
        (
            Model(name="a", when=dt.datetime(2020, 1, 1)),
            Model(name="b", when=dt.datetime(2021, 6, 1), pair=(2, "x"), tags={"t"}, line=Line("z")),
        ),
        (dt.datetime(2020, 1, 1), dt.datetime(2021, 1, 1, tzinfo=UTC)),
        (uuid.UUID(int=0), uuid.UUID(int=7)),
        (Decimal("0"), Decimal("3.14")),
        (b"", b"\x01"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_a_value_of_the_defaults_class_goes_through_that_class_and_other_values_still_round_trip(
    default: Any, value: Any
) -> None:
    codec = untyped_codec("k", default)
    data = codec.dumps(value)
    assert same(codec.loads(data), value)
    assert not data.startswith(b'{"$sp"'), "the default's own class is written bare, as @persisted writes it"
    for other in (None, 5, "text", {"a": 1}, [value.__class__.__name__]):
        assert same(codec.loads(codec.dumps(other)), other)


def test_the_defaults_class_is_written_as_persisted_with_its_annotation_writes_it() -> None:
    from solara_persisted.codec import compile_type

    value = Filters("shoes", frozenset({"sale"}))
    assert untyped_codec("k", Filters()).dumps(value) == compile_type(Filters, key="k").dumps(value)


@pytest.mark.parametrize(
    ("default", "value"),
    [
        (Filters(), Filters("x", frozenset({"t"}))),
        (Color.RED, Color.GREEN),
        (Model(name="a", when=dt.datetime(2020, 1, 1)), Model(name="a", when=dt.datetime(2020, 1, 1))),
        (Loose(), Loose([1])),
        (None, (1, {2}, dt.datetime(2020, 1, 1), uuid.UUID(int=3), Decimal("1"), b"x")),
    ],
    ids=lambda v: type(v).__name__,
)
def test_no_class_or_module_name_is_ever_stored(default: Any, value: Any) -> None:
    data = untyped_codec("k", default).dumps(value)
    for name in (
        "Filters",
        "Color",
        "Model",
        "Loose",
        "Line",
        __name__,
        "test_untyped_codec",
        "builtins",
        "datetime.",
    ):
        assert name.encode() not in data, (name, data)


def test_a_model_assigned_into_a_none_default_is_refused_naming_key_and_fix() -> None:
    codec = untyped_codec("shop.selected", None)
    with pytest.raises(EncodeError) as refused:
        codec.dumps(Line("a"))
    message = str(refused.value)
    assert message.startswith("persisted key shop.selected: Line has no JSON form here")
    assert "persist=True stores no class name" in message
    assert "@persisted(key='shop.selected', version=1)" in message and "annotated" in message


@pytest.mark.parametrize(
    ("value", "path", "problem"),
    [
        ([1, {"x": Line("a")}], '[1]["x"]', "Line has no JSON form here"),
        ((Color.RED,), "[0]", "Color has no JSON form here"),
        ({"s": {Opaque()}}, '["s"][0]', "Opaque has no JSON form here"),
        ({1: "a"}, "", "a dict key of type int (1): JSON object keys are strings"),
        ([bytearray(b"x")], "[0]", "bytearray has no JSON form here"),
        (
            [dt.datetime(2020, 1, 1, tzinfo=dt.timezone(dt.timedelta(microseconds=1)))],
            "[0]",
            "has a fraction of a second",
        ),
    ],
)
def test_what_has_no_json_form_is_refused_with_its_path(value: Any, path: str, problem: str) -> None:
    with pytest.raises(EncodeError) as refused:
        untyped_codec("k", []).dumps(value)
    assert refused.value.path == path
    assert problem in refused.value.problem


def test_a_subclass_of_the_defaults_class_is_refused_not_stored_as_the_parent() -> None:
    @dataclasses.dataclass
    class Special(Line):
        note: str = ""

    with pytest.raises(EncodeError, match="Special has no JSON form here"):
        untyped_codec("k", Line("a")).dumps(Special("a"))


def test_cycles_and_deep_nesting_are_refused_at_write() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(EncodeError, match="cycle"):
        untyped_codec("k", []).dumps(loop)
    deep: Any = 0
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(EncodeError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        untyped_codec("k", []).dumps(deep)


def test_the_size_cap_stops_a_large_value_while_it_is_encoded() -> None:
    codec = untyped_codec("k", [])
    with pytest.raises(OversizeError) as refused:
        codec.dumps(["x" * 1000] * 1000, max_bytes=10_000)
    assert not refused.value.exact and refused.value.size <= 12_000 and refused.value.path.startswith("[")
    assert len(codec.dumps(["x" * 10] * 10, max_bytes=10_000)) < 10_000
    with pytest.raises(OversizeError):
        untyped_codec("k", Filters()).dumps(Filters("x" * 500), max_bytes=100)


@pytest.mark.parametrize(
    ("data", "path", "problem"),
    [
        (b'{"$sp":"tuple"}', "", "a tagged value must be exactly"),
        (b'{"$sp":"tuple","v":[1],"x":2}', "", "a tagged value must be exactly"),
        (b'[{"$sp":"klass","v":"os:system"}]', "[0]", "unknown tagged value 'klass'"),
        (b'{"a":{"$sp":"uuid","v":"nope"}}', '["a"]', "'nope' is not a stored uuid"),
        (b'{"$sp":"set","v":[[1]]}', "", "a set holds an unhashable item"),
        (b'{"$sp":"int","v":"1.5"}', "", "is not a stored int"),
        (b'{"$sp":"float","v":"1.5"}', "", "is not a stored float"),
        (b'{"$sp":"bytes","v":"***"}', "", "is not a stored bytes"),
        (b'{"a":1,"a":2}', '["a"]', "repeats this key"),
    ],
)
def test_stored_bytes_that_dumps_never_writes_are_refused(data: bytes, path: str, problem: str) -> None:
    with pytest.raises(DecodeError) as refused:
        untyped_codec("k", []).loads(data)
    assert refused.value.path == path and problem in refused.value.problem


def test_a_rooted_codec_refuses_a_tag_other_than_its_own_at_the_top() -> None:
    codec = untyped_codec("k", Line("a"))
    with pytest.raises(DecodeError, match="expected a value of Line or a tagged other"):
        codec.loads(b'{"$sp":"tuple","v":[1]}')
    with pytest.raises(DecodeError):
        codec.loads(b'{"sku":1}')


def test_numpy_scalars_are_stored_as_the_numbers_they_hold() -> None:
    codec = untyped_codec("k", 0)
    assert codec.loads(codec.dumps([numpy.int64(3), numpy.float32(1.5), numpy.bool_(True)])) == [3, 1.5, True]


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.dates()
    | st.uuids()
    | st.decimals(allow_nan=False)
    | st.binary()
)
_hashable = st.recursive(
    _scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=8
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.just(MARKER), inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.sets(_hashable, max_size=3)
    ),
    max_leaves=20,
)


@PROPERTY
@given(_values)
def test_property_what_dumps_writes_loads_gives_back_exactly(value: Any) -> None:
    codec = untyped_codec("k", None)
    data = codec.dumps(value)
    orjson.loads(data)  # plain JSON, for any reader
    assert same(codec.loads(data), value)
