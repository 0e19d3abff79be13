"""Reading sessions Solara's built-in engine stored: the switch of a running fleet to our engine.

Every stored session here is written by Solara's own engine code (``solara.state``: its envelope
encoder, its Redis backend's takeover and fenced flush, the calls its per-kernel manager makes)
into a real redis-server; ours reads it back through ``take_solara_hash`` and
``read_solara_session``, and through ``Engine.restore`` on a miss of our own hash. The reader
itself imports nothing from Solara (checked below).
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import enum
import importlib.abc
import logging
import os
import secrets
import sys
import textwrap
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
import solara.server.settings as solara_server_settings
import solara.state as solara_state
from solara.state.redis import RedisStateBackend
from support import wait_until

from solara_persisted import solara_format
from solara_persisted.address import session_address
from solara_persisted.backends.base import Backend, SessionBudget
from solara_persisted.backends.memory import MemoryBackend, _Hash
from solara_persisted.backends.redis import RedisBackend
from solara_persisted.config import Settings
from solara_persisted.engine import Engine, Restored
from solara_persisted.solara_format import SolaraEngineSettings, read_solara_session, session_hmacs
from solara_persisted.spec import persist_true_spec, persisted, registry

SECRET = secrets.token_urlsafe(32)
OTHER_SECRET = secrets.token_urlsafe(32)
TAG = "v7"
TTL = 3600.0
NO_BUDGET = SessionBudget()
READER = Path(solara_format.__file__)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: float
    tags: tuple[str, ...] = ()
    color: Color = Color.RED


#: key -> (the persist=True default, the value a Solara-engine session stored), for every kind
#: Solara's JSON codec stores.
UNTYPED: dict[str, tuple[Any, Any]] = {
    "v.none": (0, None),
    "v.bool": (False, True),
    "v.int": (0, -(2**40)),
    "v.float": (0.0, 2.5),
    "v.str": ("", 'héllo "quoted" \\ ☃'),
    "v.list": ([], [1, "two", None, [3.5, False]]),
    "v.dict": ({}, {"a": 1, "nested": {"b": [1, 2]}, "$sp": "ours-is-reserved, theirs is not"}),
    "v.tuple": ((), (1, "a", 2.5)),
    "v.set": (set(), {1, 2, 3}),
    "v.frozenset": (frozenset(), frozenset({"n1", "n2"})),
    "v.datetime": (dt.datetime(2000, 1, 1), dt.datetime(2024, 5, 6, 7, 8, 9, 123456)),
    "v.aware": (None, dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    "v.date": (dt.date(2000, 1, 1), dt.date(2024, 2, 29)),
    "v.time": (dt.time(0, 0), dt.time(23, 59, 58, 1)),
    "v.uuid": (uuid.UUID(int=0), uuid.uuid4()),
    "v.decimal": (Decimal(0), Decimal("1234.5600")),
    "v.bytes": (b"", bytes(range(256))),
    "v.enum": (Color.RED, Color.BLUE),
    "v.dataclass": (Point(0, 0.0), Point(3, 4.5, ("a", "b"), Color.BLUE)),
    "v.mixed": ({}, {"when": dt.date(2024, 1, 2), "seen": {"x"}, "ids": [uuid.UUID(int=7)], "raw": b"\x00"}),
}


# --------------------------------------------------------------------------- Solara's side


@pytest.fixture
def solara_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Solara's own state settings for its engine code in this process: our secret, a prefix of this test's own."""
    state = solara_server_settings.state
    monkeypatch.setattr(state, "secret_keys", SECRET)
    monkeypatch.setattr(state, "prefix", f"s{uuid.uuid4().hex[:6]}:state:")
    monkeypatch.setattr(state, "schema_tag", TAG)
    yield state


@pytest.fixture
def solara_backend(solara_settings: Any, redis_client: redis.Redis) -> RedisStateBackend:
    return RedisStateBackend(client=redis_client)


def solara_write(backend: RedisStateBackend, kernel_id: str, cookie: str, values: Mapping[str, Any]) -> int:
    """A session as Solara's engine stores it: the connect-time takeover, then one fenced flush of
    ``values``, each encoded as its manager encodes it. Returns the generation Solara's instance holds."""
    taken = backend.takeover(
        kernel_id, solara_state.session_hmacs(cookie), solara_state.effective_schema_tag()
    )
    fields = {
        f"reactive:{key}": solara_state.encode(value, kernel_id=kernel_id, field_name=f"reactive:{key}")
        for key, value in values.items()
    }
    written = backend.flush(
        kernel_id,
        taken.generation,
        fields,
        TTL,
        solara_state.session_hmac(cookie),
        solara_state.effective_schema_tag(),
    )
    assert written, "Solara's own flush was refused"
    return taken.generation


def solara_generation(client: redis.Redis, key: str) -> int:
    return int(client.hget(key, "__generation__"))


# --------------------------------------------------------------------------- our side


@pytest.fixture
def specs() -> Iterator[dict[str, Any]]:
    """Our declarations of the same keys: each UNTYPED key as persist=True adopts it, plus typed ones."""
    with registry.isolated():
        for line, (key, (default, _)) in enumerate(UNTYPED.items(), start=1):
            registry.adopt(*persist_true_spec(key, default, "json", __file__, line))

        @persisted(key="typed.when")
        def when() -> dt.datetime:
            return dt.datetime(2000, 1, 1)

        @persisted(key="typed.pair")
        def pair() -> tuple[int, str]:
            return (0, "")

        @persisted(key="typed.point")
        def point() -> Point:
            return Point(0, 0.0)

        @persisted(key="typed.ids")
        def ids() -> frozenset[uuid.UUID]:
            return frozenset()

        @persisted(key="typed.count")
        def count() -> int:
            return 0

        yield {"when": when, "pair": pair, "point": point, "ids": ids, "count": count}


@pytest.fixture
def backend(redis_url: str) -> Iterator[RedisBackend]:
    ours = RedisBackend(Settings(backend="redis", url=redis_url, prefix=f"o{uuid.uuid4().hex[:6]}:"))
    yield ours
    ours.close()


def take_and_read(
    backend: Backend,
    solara_settings: Any,
    kernel_id: str,
    cookie: str,
    *,
    secret_keys: tuple[str, ...] = (SECRET,),
    schema_tag: str = TAG,
    budget: SessionBudget = NO_BUDGET,
) -> solara_format.SolaraSession:
    fields = backend.take_solara_hash(
        solara_settings.prefix + kernel_id, session_hmacs(cookie, secret_keys), TTL, budget
    )
    return read_solara_session(
        fields,
        kernel_id=kernel_id,
        session_id=cookie,
        secrets=secret_keys,
        schema_tag=schema_tag,
        registry=registry,
        max_value_bytes=1_000_000,
    )


def new_session() -> tuple[str, str]:
    return str(uuid.uuid4()), secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- values


def test_every_kind_solaras_json_codec_stores_comes_back_equal(
    specs: dict[str, Any], solara_backend: RedisStateBackend, backend: RedisBackend, solara_settings: Any
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {key: value for key, (_, value) in UNTYPED.items()})

    read = take_and_read(backend, solara_settings, kernel_id, cookie)

    assert read.outcome == "restored", read.problem
    for key, (_, value) in UNTYPED.items():
        assert read.values[key] == value, key
        assert type(read.values[key]) is type(value), key  # a tuple stays a tuple, a set a set
    assert read.values["v.dataclass"].tags == ("a", "b")  # through the default's class: typed fields
    assert read.nbytes > 0 and read.undeclared == () and read.oversize == ()


def test_the_values_are_what_our_own_codec_gives_back(
    specs: dict[str, Any], solara_backend: RedisStateBackend, backend: RedisBackend, solara_settings: Any
) -> None:
    """Whatever Solara stored, the value installed is one our writer can write and read back unchanged."""
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {key: value for key, (_, value) in UNTYPED.items()})
    read = take_and_read(backend, solara_settings, kernel_id, cookie)
    for key, value in read.values.items():
        codec = registry.resolve(key).type_codec
        assert codec.loads(codec.dumps(value)) == value, key


def test_typed_specs_structure_solaras_plain_values_through_their_annotation(
    specs: dict[str, Any], solara_backend: RedisStateBackend, backend: RedisBackend, solara_settings: Any
) -> None:
    kernel_id, cookie = new_session()
    stored = {
        "typed.when": dt.datetime(2024, 1, 2, 3, 4, 5),
        "typed.pair": (7, "seven"),  # Solara stores a list
        "typed.point": Point(1, 2.0, ("t",), Color.BLUE),
        "typed.ids": frozenset({uuid.UUID(int=1), uuid.UUID(int=2)}),
        "typed.count": 41,
    }
    solara_write(solara_backend, kernel_id, cookie, stored)

    read = take_and_read(backend, solara_settings, kernel_id, cookie)

    assert read.outcome == "restored", read.problem
    assert read.values == stored
    assert type(read.values["typed.pair"]) is tuple


def test_a_typed_spec_refuses_a_value_of_another_type_as_a_codec_bailout(
    specs: dict[str, Any], solara_backend: RedisStateBackend, backend: RedisBackend, solara_settings: Any
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"typed.count": "three", "v.int": 5})

    read = take_and_read(backend, solara_settings, kernel_id, cookie)

    assert (read.outcome, read.cause, read.key) == ("bailout", "codec", "typed.count")
    assert read.values == {}  # all or nothing


def test_undeclared_keys_are_skipped_and_named(
    specs: dict[str, Any], solara_backend: RedisStateBackend, backend: RedisBackend, solara_settings: Any
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5, "gone.key": [1]})

    read = take_and_read(backend, solara_settings, kernel_id, cookie)

    assert (read.outcome, dict(read.values), read.undeclared) == ("restored", {"v.int": 5}, ("gone.key",))


@dataclasses.dataclass
class Parcel:
    """Of no JSON form: only a pickle serializer stores it."""

    weight: float


def test_solaras_pickle_is_read_only_for_a_pickle_key_behind_the_gate(
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOLARA_STATE_ALLOW_PICKLE", "true")  # our gate, for the pickle spec
    monkeypatch.setattr(solara_settings, "allow_pickle", True)  # Solara's, for its writer
    kernel_id, cookie = new_session()
    fields = {
        "reactive:p.parcel": solara_state.encode(
            Parcel(2.5), codec="pickle", kernel_id=kernel_id, field_name="reactive:p.parcel"
        ),
        "reactive:p.json": solara_state.encode(
            5, codec="pickle", kernel_id=kernel_id, field_name="reactive:p.json"
        ),
    }
    taken = solara_backend.takeover(kernel_id, solara_state.session_hmacs(cookie), TAG)
    assert solara_backend.flush(
        kernel_id, taken.generation, fields, TTL, solara_state.session_hmac(cookie), TAG
    )
    key = solara_settings.prefix + kernel_id

    def read(allow_pickle: bool) -> solara_format.SolaraSession:
        raw = backend.take_solara_hash(key, session_hmacs(cookie, (SECRET,)), TTL, NO_BUDGET)
        return read_solara_session(
            raw,
            kernel_id=kernel_id,
            session_id=cookie,
            secrets=(SECRET,),
            schema_tag=TAG,
            registry=registry,
            allow_pickle=allow_pickle,
        )

    with registry.isolated():
        registry.adopt(*persist_true_spec("p.parcel", Parcel(0.0), "pickle", __file__, 1))
        assert (read(True).outcome, dict(read(True).values)) == ("restored", {"p.parcel": Parcel(2.5)})
        refused = read(False)
        assert (refused.outcome, refused.cause, refused.key) == ("bailout", "codec", "p.parcel")
        assert "SOLARA_STATE_ALLOW_PICKLE" in refused.problem
        registry.adopt(*persist_true_spec("p.json", 0, "json", __file__, 2))  # declared json: never unpickled
        refused = read(True)
        assert (refused.outcome, refused.cause, refused.key) == ("bailout", "codec", "p.json")


# --------------------------------------------------------------------------- classes named in the data


class _ImportRecorder(importlib.abc.MetaPathFinder):
    """Records every module import attempted while installed (and lets the real finders do the rest)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        self.asked.append(fullname)
        return None


def _class_in_temporary_module(name: str) -> type:
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(  # a module that exists only while Solara encodes its instance
        textwrap.dedent(
            """
            import dataclasses

            @dataclasses.dataclass
            class Point:
                x: int
                y: float
            """
        ),
        module.__dict__,
    )
    return module.Point


def test_a_class_tag_naming_another_class_is_refused_without_importing_it(
    specs: dict[str, Any], solara_backend: RedisStateBackend, backend: RedisBackend, solara_settings: Any
) -> None:
    name = f"solara_format_probe_{uuid.uuid4().hex}"
    impostor = _class_in_temporary_module(name)
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.dataclass": impostor(1, 2.0)})
    del sys.modules[name]  # the stored tag names "<name>:Point", a module no longer loaded anywhere
    recorder = _ImportRecorder()
    sys.meta_path.insert(0, recorder)
    try:
        read = take_and_read(backend, solara_settings, kernel_id, cookie)
    finally:
        sys.meta_path.remove(recorder)

    assert (read.outcome, read.cause, read.key) == ("bailout", "codec", "v.dataclass")
    assert f"{name}:Point" in read.problem and "only the default's own class" in read.problem
    assert name not in recorder.asked and name not in sys.modules


@pytest.mark.parametrize(
    "key, value",
    [
        ("v.none", Point(1, 2.0)),  # a class instance where the default (0) names no class
        ("v.list", [Color.RED]),  # a class instance nested in a self-described value
        ("v.enum", Point(1, 2.0)),  # a dataclass where the default is an enum
    ],
)
def test_an_untyped_value_holding_a_class_the_default_does_not_name_is_a_codec_bailout(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    key: str,
    value: Any,
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {key: value})
    read = take_and_read(backend, solara_settings, kernel_id, cookie)
    assert (read.outcome, read.cause, read.key) == ("bailout", "codec", key)
    assert "@persisted" in read.problem  # the fix


def test_the_reader_imports_nothing_from_solara() -> None:
    tree = ast.parse(READER.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name == "solara" or name.startswith("solara.")}
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert "import_module" not in calls and "__import__" not in READER.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the session binding


def test_another_browsers_cookie_gets_nothing_and_fences_nothing(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    redis_client: redis.Redis,
) -> None:
    kernel_id, cookie = new_session()
    generation = solara_write(solara_backend, kernel_id, cookie, {"v.int": 5})
    key = solara_settings.prefix + kernel_id

    stranger = take_and_read(backend, solara_settings, kernel_id, secrets.token_urlsafe(32))

    assert (stranger.outcome, dict(stranger.values)) == ("foreign-session", {})
    assert solara_generation(redis_client, key) == generation  # the owner's Solara instance still writes
    assert take_and_read(backend, solara_settings, kernel_id, cookie).values == {"v.int": 5}


def test_no_hash_is_a_miss(specs: dict[str, Any], backend: RedisBackend, solara_settings: Any) -> None:
    kernel_id, cookie = new_session()
    assert take_and_read(backend, solara_settings, kernel_id, cookie).outcome == "miss"


def test_a_connection_that_never_wrote_is_a_miss(
    specs: dict[str, Any], solara_backend: RedisStateBackend, backend: RedisBackend, solara_settings: Any
) -> None:
    """Solara's takeover claims the hash on connect; with nothing written, there is nothing to restore."""
    kernel_id, cookie = new_session()
    solara_backend.takeover(kernel_id, solara_state.session_hmacs(cookie), TAG)
    assert take_and_read(backend, solara_settings, kernel_id, cookie).outcome == "miss"


# --------------------------------------------------------------------------- signatures


def test_a_tampered_envelope_is_an_hmac_bailout(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    redis_client: redis.Redis,
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5, "v.str": "fine"})
    key = solara_settings.prefix + kernel_id
    envelope = bytearray(redis_client.hget(key, "reactive:v.int"))
    envelope[-40] ^= 0x01  # inside the payload: the JSON still parses, as 4 or 7
    redis_client.hset(key, "reactive:v.int", bytes(envelope))

    read = take_and_read(backend, solara_settings, kernel_id, cookie)

    assert (read.outcome, read.cause, read.key, dict(read.values)) == ("bailout", "hmac", "v.int", {})


def test_an_envelope_replayed_from_another_kernel_or_field_is_an_hmac_bailout(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    redis_client: redis.Redis,
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5, "v.float": 1.5})
    other_kernel, _ = new_session()
    solara_write(solara_backend, other_kernel, cookie, {"v.int": 99})
    key = solara_settings.prefix + kernel_id
    redis_client.hset(
        key, "reactive:v.int", redis_client.hget(solara_settings.prefix + other_kernel, "reactive:v.int")
    )
    assert take_and_read(backend, solara_settings, kernel_id, cookie).cause == "hmac"

    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5, "v.float": 1.5})
    key = solara_settings.prefix + kernel_id
    redis_client.hset(key, "reactive:v.float", redis_client.hget(key, "reactive:v.int"))
    assert take_and_read(backend, solara_settings, kernel_id, cookie).cause == "hmac"


def test_state_signed_with_another_secret_is_an_hmac_bailout_and_a_rotated_ring_reads_it(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    redis_client: redis.Redis,
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5})
    key = solara_settings.prefix + kernel_id
    # The session binding is under SECRET too: present it so the envelopes are what is checked.
    redis_client.hset(key, "__session_id__", session_hmacs(cookie, (OTHER_SECRET,))[0])

    other = take_and_read(backend, solara_settings, kernel_id, cookie, secret_keys=(OTHER_SECRET,))
    assert (other.outcome, other.cause, other.key) == ("bailout", "hmac", "v.int")
    assert "not in SOLARA_STATE_SECRET_KEYS" in other.problem

    rotated = take_and_read(backend, solara_settings, kernel_id, cookie, secret_keys=(OTHER_SECRET, SECRET))
    assert (rotated.outcome, dict(rotated.values)) == ("restored", {"v.int": 5})


def test_a_session_bound_under_a_non_primary_key_of_our_ring_is_ours(
    specs: dict[str, Any], solara_backend: RedisStateBackend, backend: RedisBackend, solara_settings: Any
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5})
    read = take_and_read(backend, solara_settings, kernel_id, cookie, secret_keys=(OTHER_SECRET, SECRET))
    assert (read.outcome, dict(read.values)) == ("restored", {"v.int": 5})


def test_a_broken_envelope_is_an_envelope_bailout(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    redis_client: redis.Redis,
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5})
    key = solara_settings.prefix + kernel_id
    redis_client.hset(key, "reactive:v.int", redis_client.hget(key, "reactive:v.int")[:-1])
    read = take_and_read(backend, solara_settings, kernel_id, cookie)
    assert (read.outcome, read.cause, read.key) == ("bailout", "envelope", "v.int")


# --------------------------------------------------------------------------- schema, fencing, budget, TTL


def test_another_schema_tag_restores_nothing(
    specs: dict[str, Any], solara_backend: RedisStateBackend, backend: RedisBackend, solara_settings: Any
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5})
    read = take_and_read(backend, solara_settings, kernel_id, cookie, schema_tag="v8")
    assert (read.outcome, dict(read.values)) == ("schema-mismatch", {})


def test_taking_the_hash_fences_solaras_writer_out(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    redis_client: redis.Redis,
) -> None:
    kernel_id, cookie = new_session()
    generation = solara_write(solara_backend, kernel_id, cookie, {"v.int": 5})
    key = solara_settings.prefix + kernel_id

    assert take_and_read(backend, solara_settings, kernel_id, cookie).outcome == "restored"

    assert solara_generation(redis_client, key) == generation + 1
    late = {"reactive:v.int": solara_state.encode(6, kernel_id=kernel_id, field_name="reactive:v.int")}
    # the still-running Solara-engine instance's next flush, from the generation it holds: refused
    assert not solara_backend.flush(kernel_id, generation, late, TTL, solara_state.session_hmac(cookie), TAG)
    assert (
        solara_state.decode(
            redis_client.hget(key, "reactive:v.int"), kernel_id=kernel_id, field_name="reactive:v.int"
        )
        == 5
    )
    # the hash is left as it was: an instance still on Solara's engine can take it over in turn
    again = solara_backend.takeover(kernel_id, solara_state.session_hmacs(cookie), TAG)
    assert (again.reason, again.generation) == ("restored", generation + 2)


def test_over_budget_reads_no_value(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    redis_client: redis.Redis,
) -> None:
    kernel_id, cookie = new_session()
    generation = solara_write(solara_backend, kernel_id, cookie, {"v.int": 5, "v.str": "x" * 100})
    key = solara_settings.prefix + kernel_id

    fields = backend.take_solara_hash(key, session_hmacs(cookie, (SECRET,)), TTL, SessionBudget(max_keys=1))
    assert fields is not None and fields[b"__over_budget__"] == b"keys 2"
    assert not any(name.startswith(b"reactive:") for name in fields)
    assert solara_generation(redis_client, key) == generation + 1  # fenced all the same

    read = take_and_read(backend, solara_settings, kernel_id, cookie, budget=SessionBudget(max_bytes=100))
    assert (read.outcome, read.cause) == ("bailout", "budget")
    assert "bytes" in read.problem


def test_the_ttl_is_capped_never_extended(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    redis_client: redis.Redis,
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5})
    key = solara_settings.prefix + kernel_id
    hmacs = session_hmacs(cookie, (SECRET,))

    backend.take_solara_hash(key, hmacs, 2 * TTL, NO_BUDGET)
    assert 0 < redis_client.pttl(key) <= TTL * 1000
    backend.take_solara_hash(key, hmacs, 60.0, NO_BUDGET)
    assert 0 < redis_client.pttl(key) <= 60_000
    redis_client.persist(key)
    backend.take_solara_hash(key, hmacs, 60.0, NO_BUDGET)
    assert 0 < redis_client.pttl(key) <= 60_000


def test_memory_takes_a_hash_exactly_as_redis_does(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    backend: RedisBackend,
    solara_settings: Any,
    redis_client: redis.Redis,
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5, "v.str": "x" * 100})
    key = solara_settings.prefix + kernel_id
    memory = MemoryBackend(Settings())
    for cookie_now, budget in [
        (cookie, NO_BUDGET),
        (cookie, SessionBudget(max_keys=1)),
        (cookie, SessionBudget(max_bytes=100)),
        ("another browser", NO_BUDGET),
    ]:
        memory._hashes[key] = _Hash(dict(redis_client.hgetall(key)), float("inf"))  # the same bytes
        hmacs = session_hmacs(cookie_now, (SECRET,))
        from_memory = memory.take_solara_hash(key, hmacs, TTL, budget)
        from_redis = backend.take_solara_hash(key, hmacs, TTL, budget)
        assert from_memory == from_redis
        assert memory._hashes[key].fields == redis_client.hgetall(key)
    assert memory.take_solara_hash("nothing-here", hmacs, TTL, NO_BUDGET) is None


# --------------------------------------------------------------------------- Solara's settings


def _solaras_own_reading(monkeypatch: pytest.MonkeyPatch, environ: Mapping[str, str]) -> tuple[str, str]:
    """Solara's prefix and effective schema tag, as Solara's own settings read ``environ``."""
    for name in [name for name in os.environ if name.upper().startswith("SOLARA_STATE_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    state = solara_server_settings.State()
    monkeypatch.setattr(solara_server_settings, "state", state)
    return state.prefix, solara_state.effective_schema_tag()


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"SOLARA_STATE_PREFIX": "app1:", "SOLARA_STATE_SCHEMA_TAG": "v2"},
        {"solara_state_prefix": "lower:", "Solara_State_Schema_Tag": "mixed"},
        {"SOLARA_STATE_PREFIX": " spaced: ", "SOLARA_STATE_SCHEMA_TAG": ""},
    ],
)
def test_solaras_prefix_and_schema_tag_are_read_as_solara_reads_them(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    ours = SolaraEngineSettings.from_env(environ)
    assert (ours.prefix, ours.schema_tag) == _solaras_own_reading(monkeypatch, environ)


def test_with_the_shared_variable_unset_the_prefixes_differ() -> None:
    assert SolaraEngineSettings.from_env({}).prefix == "solara:state:"
    assert Settings.from_env({}).prefix == "solara:"
    assert SolaraEngineSettings.from_env({}).hash_key("k1") == "solara:state:k1"


# --------------------------------------------------------------------------- the engine


@pytest.fixture
def engine_settings(redis_url: str, solara_settings: Any, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Our engine's settings; the environment says what Solara's engine used (one shared prefix)."""
    monkeypatch.setenv("SOLARA_STATE_PREFIX", solara_settings.prefix)
    monkeypatch.setenv("SOLARA_STATE_SCHEMA_TAG", TAG)
    return Settings(
        backend="redis",
        url=redis_url,
        secret_keys=(SECRET,),
        prefix=solara_settings.prefix,
        schema_tag=TAG,
        flush_debounce=0.05,
        session_http_only=True,
    )


def test_an_engine_restores_a_solara_session_and_rewrites_it_in_our_format(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    engine_settings: Settings,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kernel_id, cookie = new_session()
    stored = {key: value for key, (_, value) in UNTYPED.items()}
    generation = solara_write(solara_backend, kernel_id, cookie, stored)
    b = Engine(engine_settings)
    b.start()
    try:
        with caplog.at_level(logging.INFO, logger="solara.state"):
            restored = b.restore(kernel_id, cookie)
        assert (restored.result, dict(restored.values)) == ("success", stored)
        assert restored.resign == frozenset(stored)  # all written in our format at once
        assert f"restore result=success kernel={kernel_id} from=solara-engine" in caplog.text
        block = b.state_block()
        assert (block["restore_attempts"], block["restore_success"]) == (1, 1)
        assert solara_generation(redis_client, engine_settings.prefix + kernel_id) == generation + 1

        address = session_address(cookie, kernel_id)
        session = b.open_session(kernel_id, restored, lambda keys: {k: restored.values[k] for k in keys})
        wait_until(lambda: b.backend.peek_generation(address) is not None, "the first write, in our format")
        assert b.backend.peek_generation(address) == session.generation
        b.close_session(session, "server-shutdown")
    finally:
        b.close()

    c = Engine(engine_settings)  # the next failover reads our format: Solara's hash is not consulted
    try:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="solara.state"):
            again = c.restore(kernel_id, cookie)
        assert (again.result, dict(again.values)) == ("success", stored)
        assert "from=solara-engine" not in caplog.text
        assert solara_generation(redis_client, engine_settings.prefix + kernel_id) == generation + 1
    finally:
        c.close()


@pytest.mark.parametrize(
    "change, result, cause",
    [
        ("stranger", "miss", None),
        ("schema", "fresh-schema", None),
        ("tamper", "bailout", "hmac"),
    ],
)
def test_an_engine_restores_nothing_it_must_not(
    specs: dict[str, Any],
    solara_backend: RedisStateBackend,
    engine_settings: Settings,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    change: str,
    result: str,
    cause: str | None,
) -> None:
    kernel_id, cookie = new_session()
    solara_write(solara_backend, kernel_id, cookie, {"v.int": 5})
    key = engine_settings.prefix + kernel_id
    if change == "stranger":
        cookie = secrets.token_urlsafe(32)
    elif change == "schema":
        monkeypatch.setenv("SOLARA_STATE_SCHEMA_TAG", "v8")
    else:
        envelope = bytearray(redis_client.hget(key, "reactive:v.int"))
        envelope[-1] ^= 0xFF
        redis_client.hset(key, "reactive:v.int", bytes(envelope))
    b = Engine(engine_settings)
    try:
        with caplog.at_level(logging.INFO, logger="solara.state"):
            restored = b.restore(kernel_id, cookie)
        assert (restored.result, restored.cause, dict(restored.values)) == (result, cause, {})
        assert restored.generation  # a fresh start with write rights of its own
        counter = {
            "miss": "restore_miss",
            "fresh-schema": "restore_schema_reset",
            "bailout": "restore_bailout",
        }
        block = b.state_block()
        assert (block["restore_attempts"], block[counter[result]]) == (1, 1)
        assert redis_client.exists(key)  # Solara's hash is never deleted: left to its TTL
        if change == "stranger":
            assert "another browser session" in caplog.text
    finally:
        b.close()


def test_only_a_miss_looks_for_solaras_hash(
    specs: dict[str, Any], engine_settings: Settings, redis_client: redis.Redis
) -> None:
    """A failover that finds our state is one round trip; a miss (a new page) one more, to look for
    the session in Solara's format (counted as in test_backends' round-trip tests: the INFO call
    itself is one read)."""
    engine = Engine(engine_settings)
    engine.start()
    try:
        kernel_id, cookie = new_session()
        restored = engine.restore(kernel_id, cookie)
        session = engine.open_session(kernel_id, restored, lambda keys: {key: 3 for key in keys})
        engine.mark_dirty(session, "typed.count")
        assert engine.writer.flush_now(session, 5.0)

        def reads(restore: Callable[[], Restored], result: str) -> int:
            """The fewest reads of three tries: another client of the suite's Redis can only add some."""
            counts = []
            for _ in range(3):
                before = redis_client.info("stats")["total_reads_processed"]
                assert restore().result == result
                counts.append(redis_client.info("stats")["total_reads_processed"] - before)
            return min(counts)

        assert reads(lambda: engine.restore(kernel_id, cookie), "success") == 1 + 1
        assert reads(lambda: engine.restore(*new_session()), "miss") == 2 + 1
    finally:
        engine.close()
