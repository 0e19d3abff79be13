"""The backend contract, one suite run against ``memory`` and a real redis-server.

Each test states one rule of the contract (a session is addressed by a digest of its cookie and
kernel id; a miss writes nothing; schema reset; budget bail-out; fencing; ``must_exist``; TTL;
fenced delete; batching) and checks the stored hash itself, not only what the backend answers.
Redis-only tests below cover what memory cannot: corrupt meta fields planted by hand, what the
server executes, timeouts, the round-trip count, the script cache, the eviction policy, the
compact encoding and URL forms.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import redis
from backend_helpers import (
    FIRST,
    META,
    NO_LIMIT,
    TTL,
    cookie,
    flush_request,
    kernel,
    make_meta,
    named,
    new_address,
    packed,
    schema_digest,
)
from pytest_redis.executor import RedisExecutor

from solara_persisted.address import ADDRESS, session_address, shared_address
from solara_persisted.backends import create_backend
from solara_persisted.backends.base import (
    META_FIELD,
    Backend,
    FlushRequest,
    Meta,
    Reasserted,
    SessionBudget,
    Takeover,
    connection_generation,
    pack_stamp,
    tag_digest,
)
from solara_persisted.backends.memory import MemoryBackend
from solara_persisted.backends.redis import SESSIONS_PER_CALL, RedisBackend, client_factory, redact
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.envelope import Codec, KeyRing, envelope_tag, seal
from solara_persisted.errors import BackendError, ConfigError, InvalidIdentifierError
from solara_persisted.spec import persisted, registry

Raw = Callable[[str], "dict[bytes, bytes] | None"]


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def take(
    backend: Backend, address: str, schema_tag: str = "v1", budget: SessionBudget = NO_LIMIT
) -> Takeover:
    """A takeover with its ``ttl_left`` checked and then blanked: it is wall-clock, so the two
    backends agree on it only to within the time between their calls."""
    took = backend.takeover(address, schema_tag, TTL, budget)
    if took.reason == "miss":
        assert took.ttl_left is None
    else:  # None: a hash planted by hand may carry no TTL at all
        assert took.ttl_left is None or 0 <= took.ttl_left <= TTL
    return attrs.evolve(took, ttl_left=None)


def outcome(takeover: Takeover) -> tuple[str, int, dict[bytes, bytes]]:
    return takeover.reason, takeover.generation, dict(takeover.fields)


@pytest.fixture
def prefix() -> str:
    """Every test its own key namespace on the shared server."""
    return f"t{uuid.uuid4().hex[:8]}:"


@pytest.fixture(params=["memory", "redis"])
def settings(request: pytest.FixtureRequest, prefix: str) -> Settings:
    if request.param == "memory":
        return Settings(backend="memory", prefix=prefix)
    return Settings(backend="redis", url=request.getfixturevalue("redis_url"), prefix=prefix)


@pytest.fixture
def backend(settings: Settings) -> Iterator[Backend]:
    backend = create_backend(settings)
    yield backend
    backend.close()


@pytest.fixture
def raw(settings: Settings, backend: Backend, request: pytest.FixtureRequest) -> Raw:
    """Read a session's stored hash directly (meta field included), None when the key is absent."""
    if isinstance(backend, MemoryBackend):
        return backend.raw
    client: redis.Redis = request.getfixturevalue("redis_client")

    def read(address: str) -> dict[bytes, bytes] | None:
        key = settings.prefix + address
        if not client.exists(key):
            return None
        return client.hgetall(key)

    return read


# -- the contract, on both backends ---------------------------------------------------------------


def test_miss_returns_generation_zero_and_writes_nothing(backend: Backend, raw: Raw) -> None:
    address = new_address()
    takeover = take(backend, address)
    assert takeover == Takeover("miss", 0), "no meta, no fields: the engine picks a fresh generation"
    assert raw(address) is None, "a miss must not create the key"
    assert backend.peek_generation(address) is None


def test_a_miss_with_a_claim_writes_the_claim_and_fences_the_holder_before_it(
    backend: Backend, raw: Raw
) -> None:
    address = new_address()
    paused = flush_request(address, FIRST, {"shop.page": b"old"})  # a holder that never wrote, waking up
    claimed = backend.takeover(address, "v1", TTL, NO_LIMIT, claim=FIRST + 10)
    assert (claimed.reason, claimed.generation, claimed.ttl_left) == ("miss", FIRST + 10, None)
    assert raw(address) == {META: packed(Meta.claimed(tag_digest("v1"), FIRST + 10))}, "only the claim"
    assert Meta.unpack(raw(address)[META]).is_claim  # type: ignore[index]
    assert backend.peek_generation(address) == FIRST + 10
    assert backend.flush(paused) is False, "a write from before the claim is fenced out"
    again = take(backend, address, "v2")  # a claim holds no values: another takeover is a miss again
    assert (again.reason, again.generation) == ("miss", FIRST + 11)
    assert raw(address) == {META: packed(Meta.claimed(tag_digest("v2"), FIRST + 11))}
    assert backend.flush(flush_request(address, FIRST + 10, {"shop.page": b"b"})) is False
    assert backend.flush(flush_request(address, FIRST + 11, {"shop.page": b"c"}, schema_tag="v2"))
    assert outcome(take(backend, address, "v2")) == ("restored", FIRST + 12, {b"shop.page": b"c"})
    assert backend.delete(address, FIRST + 12)
    with pytest.raises(InvalidIdentifierError, match="claim generation"):
        backend.takeover(address, "v1", TTL, NO_LIMIT, claim=-1)


def test_a_claim_for_a_page_that_read_nothing_fences_and_drops_the_stored_values(
    backend: Backend, raw: Raw
) -> None:
    address = new_address()
    ours = [make_meta(address, FIRST, {}).key_id]
    assert backend.claim(address, "v1", TTL, FIRST + 5, ours, FIRST + 5) == FIRST + 5, "nothing stored: as given"
    assert raw(address) == {META: packed(Meta.claimed(tag_digest("v1"), FIRST + 5))}
    assert backend.flush(flush_request(address, FIRST + 5, {"shop.page": b"p", "shop.cart": b"c"}))
    paused = flush_request(address, FIRST + 5, {"shop.page": b"late"}, counter=2, must_exist=True)
    assert backend.claim(address, "v2", TTL, FIRST + 99, ours, FIRST + 5) == FIRST + 6, "stored: bumped"
    assert raw(address) == {META: packed(Meta.claimed(tag_digest("v2"), FIRST + 6))}, "its values are dropped"
    assert backend.flush(paused) is False, "the holder from before is fenced out"
    assert take(backend, address, "v2").reason == "miss"
    assert backend.claim(address, "v2", TTL, FIRST, ours, FIRST - 43) == FIRST + 8, "within the slack: ordered by bumps"
    assert backend.claim(address, "v2", TTL, FIRST, ours, FIRST - 51) == -1, "a connection opened later holds it"
    assert Meta.unpack(raw(address)[META]).generation == FIRST + 8  # type: ignore[index]


def test_takeovers_follow_connections_and_an_older_one_changes_nothing(backend: Backend, raw: Raw) -> None:
    """A paused instance that processes an old connection's first message must not take the
    session from the instance a later connection of the page took it over on."""
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"shop.page": b"p"}))
    newer = backend.takeover(address, "v1", TTL, NO_LIMIT, opened=FIRST + 1000)
    assert (newer.reason, newer.generation) == ("restored", FIRST + 1000), "at least the connection's time"
    before = raw(address)
    older = backend.takeover(address, "v1", TTL, NO_LIMIT, claim=FIRST + 10, opened=FIRST + 10)
    assert (older.reason, older.generation, older.fields) == ("stale", 0, {})
    assert raw(address) == before, "nothing bumped, nothing refreshed"
    same = backend.takeover(address, "v1", TTL, NO_LIMIT, opened=FIRST + 1000)
    assert (same.reason, same.generation) == ("restored", FIRST + 1001), "one millisecond: still distinct"
    close = backend.takeover(address, "v1", TTL, NO_LIMIT, opened=FIRST + 1001 - 50)
    assert (close.reason, close.generation) == ("restored", FIRST + 1002), "50 ms apart: not ordered"


def test_a_claim_leaves_state_signed_with_another_key_untouched(backend: Backend, raw: Raw) -> None:
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"shop.page": b"p"}))
    before = raw(address)
    assert backend.claim(address, "v1", TTL, FIRST + 5, [b"\xff\xff\xff\xff"], FIRST + 5) == 0
    assert raw(address) == before


def test_a_write_never_looks_like_a_claim(backend: Backend) -> None:
    """Counter 0 marks a claim, so a write with it is refused; the writer's counter skips it."""
    with pytest.raises(InvalidIdentifierError, match="wrong shape"):
        backend.flush(flush_request(new_address(), FIRST, {"k": b"v"}, counter=0))


def test_first_flush_creates_the_hash_with_its_meta_field(backend: Backend, raw: Raw) -> None:
    address = new_address()
    request = flush_request(address, FIRST, {"shop.page": b"\x01page", "shop.cart": b"\x02cart"})
    assert backend.flush(request)
    stored = raw(address)
    assert stored == {META: packed(request.meta), b"shop.page": b"\x01page", b"shop.cart": b"\x02cart"}
    assert len(stored[META]) == 28 + len(str(FIRST)), "tag, key id, counter and MAC, then the generation"
    assert stored[META][:4] == schema_digest("v1") == tag_digest("v1")
    assert Meta.unpack(stored[META]) == request.meta
    assert backend.peek_generation(address) == FIRST


def test_takeover_restores_every_field_and_bumps_the_generation(backend: Backend, raw: Raw) -> None:
    address = new_address()
    values = {"shop.page": bytes(range(256)), "café.ñame": b"", "user:7:query": b"\x00\xff"}
    request = flush_request(address, FIRST, values, counter=7)
    assert backend.flush(request)
    takeover = take(backend, address)
    assert outcome(takeover) == ("restored", FIRST + 1, named(values)), "field names come back as raw bytes"
    assert takeover.meta == request.meta, "the stored manifest, as it was before the bump"
    assert (takeover.over, takeover.amount) == (None, 0)
    assert raw(address) == {META: packed(request.meta, FIRST + 1), **named(values)}, (
        "only the generation changes"
    )
    assert take(backend, address).generation == FIRST + 2


def test_schema_reset_keeps_data_until_a_new_schema_write_replaces_it(backend: Backend, raw: Raw) -> None:
    address = new_address()
    old = flush_request(address, FIRST, {"old.a": b"a", "old.b": b"b"}, schema_tag="v1")
    assert backend.flush(old)
    takeover = take(backend, address, "v2")
    assert outcome(takeover) == ("schema-reset", FIRST + 1, {}), "nothing is read"
    assert takeover.meta == old.meta, "the stored meta before the bump (its tag is the old schema's)"
    assert raw(address) == {META: packed(old.meta, FIRST + 1), b"old.a": b"a", b"old.b": b"b"}, (
        "nothing deleted, the tag kept, the generation bumped"
    )
    # An instance still on the old tag (mixed-version fleet) gets a reset too and destroys nothing.
    assert take(backend, address, "v0").reason == "schema-reset"
    new = flush_request(address, FIRST + 2, {"new.c": b"c"}, schema_tag="v2", must_exist=True)
    assert backend.flush(new)
    assert raw(address) == {META: packed(new.meta), b"new.c": b"c"}, "the old tag's fields are wiped"
    restored = take(backend, address, "v2")
    assert (restored.reason, dict(restored.fields)) == ("restored", {b"new.c": b"c"})


def test_a_write_under_another_tag_wipes_every_field_of_the_old_one(backend: Backend, raw: Raw) -> None:
    """The wipe depends only on the stored tag differing from the request's, not on a takeover."""
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"a": b"1", "b": b"2", "c": b"3"}, schema_tag="v1"))
    request = flush_request(address, FIRST, {"b": b"new b"}, schema_tag="v2", removed=("c",))
    assert backend.flush(request)
    assert raw(address) == {META: packed(request.meta), b"b": b"new b"}
    same_tag = flush_request(address, FIRST, {"d": b"4"}, schema_tag="v2", counter=2, must_exist=True)
    assert backend.flush(same_tag)
    assert raw(address) == {META: packed(same_tag.meta), b"b": b"new b", b"d": b"4"}, (
        "under the same tag a write whose manifest covers what is there only adds"
    )


def test_a_superseded_instance_is_fenced_out(backend: Backend, raw: Raw) -> None:
    address = new_address()
    assert take(backend, address).reason == "miss"
    assert backend.flush(flush_request(address, FIRST, {"k": b"from A"}))  # instance A starts the session
    new = take(backend, address).generation  # instance B takes the session over
    assert new == FIRST + 1
    stale = flush_request(address, FIRST, {"k": b"stale A"}, counter=2)
    assert backend.flush(stale) is False
    assert backend.flush(attrs.evolve(stale, must_exist=True)) is False
    assert raw(address)[b"k"] == b"from A"  # type: ignore[index]
    assert Meta.unpack(raw(address)[META]).counter == 1, "a fenced-out write leaves the meta alone"  # type: ignore[index]
    assert backend.flush(flush_request(address, new, {"k": b"from B"}, counter=2, must_exist=True))
    assert raw(address)[b"k"] == b"from B"  # type: ignore[index]


def test_must_exist_refuses_a_session_that_was_deleted_or_expired(backend: Backend, raw: Raw) -> None:
    """A manifest covering fields written before must not be written over a hash that is gone."""
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"k": b"v"}, must_exist=True)) is False
    assert raw(address) is None, "never stored: refused, nothing created"

    assert backend.flush(flush_request(address, FIRST, {"a": b"1"}))
    assert backend.flush(flush_request(address, FIRST, {"b": b"2"}, counter=2, must_exist=True))
    assert set(raw(address)) == {META, b"a", b"b"}  # type: ignore[arg-type]
    assert backend.delete(address, FIRST)
    assert backend.flush(flush_request(address, FIRST, {"c": b"3"}, counter=3, must_exist=True)) is False
    assert raw(address) is None, "deleted since: refused, not recreated with only the new field"

    assert backend.flush(flush_request(address, FIRST, {"a": b"1"}, ttl=0.2))
    time.sleep(0.4)
    assert backend.flush(flush_request(address, FIRST, {"b": b"2"}, counter=2, must_exist=True)) is False
    assert raw(address) is None, "expired since: refused too"

    fresh = flush_request(address, FIRST + 5, {"a": b"again"})
    assert backend.flush(fresh), "without must_exist the write starts the hash afresh"
    assert raw(address) == {META: packed(fresh.meta), b"a": b"again"}


def test_over_budget_by_keys_is_not_read_and_can_be_deleted_fenced(backend: Backend, raw: Raw) -> None:
    address = new_address()
    values = {"a": b"1" * 10, "b": b"2" * 10, "c": b"3" * 10}
    request = flush_request(address, FIRST, values)
    assert backend.flush(request)
    takeover = take(backend, address, budget=SessionBudget(max_keys=2))
    assert outcome(takeover) == ("over-budget", FIRST + 1, {}), "no value is returned"
    assert (takeover.over, takeover.amount, takeover.meta) == ("keys", 3, request.meta)
    assert raw(address) == {META: packed(request.meta, FIRST + 1), **named(values)}, "nothing but the bump"
    assert backend.flush(flush_request(address, FIRST, {"a": b"stale"})) is False, (
        "the bump fences out the previous owner"
    )
    assert backend.delete(address, FIRST) is False
    assert backend.delete(address, takeover.generation), "the bail-out's fenced delete removes it"
    assert raw(address) is None


def test_over_budget_by_bytes_is_not_read_and_can_be_deleted_fenced(backend: Backend, raw: Raw) -> None:
    address = new_address()
    values = {"a": b"1" * 10, "b": b"2" * 10, "c": b"3" * 10}
    request = flush_request(address, FIRST, values)
    assert backend.flush(request)
    takeover = take(backend, address, budget=SessionBudget(max_keys=3, max_bytes=29))
    assert outcome(takeover) == ("over-budget", FIRST + 1, {})
    assert (takeover.over, takeover.amount, takeover.meta) == ("bytes", 30, request.meta)
    assert raw(address) == {META: packed(request.meta, FIRST + 1), **named(values)}
    assert backend.delete(address, FIRST + 1)
    assert raw(address) is None


def test_a_budget_is_inclusive_and_zero_means_no_limit(backend: Backend) -> None:
    address = new_address()
    values = {"a": b"1" * 10, "b": b"2" * 10, "c": b"3" * 10}
    assert backend.flush(flush_request(address, FIRST, values))
    for budget in (SessionBudget(3, 30), SessionBudget(0, 30), SessionBudget(3, 0), SessionBudget(0, 0)):
        takeover = take(backend, address, budget=budget)
        assert (takeover.reason, dict(takeover.fields)) == ("restored", named(values)), budget
    assert take(backend, address, budget=SessionBudget(0, 29)).over == "bytes"
    assert take(backend, address, budget=SessionBudget(2, 0)).over == "keys"


def test_over_budget_reports_what_the_session_holds(backend: Backend) -> None:
    """``amount`` is the session's whole size (``Takeover``: "how much the session holds"), the same
    on both backends, however early the budget was crossed; the engine logs it as such."""
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"a": b"1" * 10, "b": b"2" * 10, "c": b"3" * 10}))
    takeover = take(backend, address, budget=SessionBudget(max_bytes=5))
    assert (takeover.reason, takeover.over) == ("over-budget", "bytes")
    assert takeover.amount == 30, f"the session holds 30 bytes, the backend reported {takeover.amount}"


def test_the_schema_is_checked_before_the_budget(backend: Backend, raw: Raw) -> None:
    """Fields of another schema are never read, so they are not counted against the budget."""
    address = new_address()
    values = {"a": b"1" * 10, "b": b"2" * 10}
    assert backend.flush(flush_request(address, FIRST, values))
    takeover = take(backend, address, "v2", SessionBudget(max_keys=1, max_bytes=1))
    assert (takeover.reason, takeover.generation, takeover.over) == ("schema-reset", FIRST + 1, None)
    assert {name for name in raw(address) if name != META} == {b"a", b"b"}  # type: ignore[union-attr]


def test_removed_fields_are_deleted_in_the_same_write(backend: Backend, raw: Raw) -> None:
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"a": b"1", "b": b"2", "c": b"3"}))
    request = flush_request(address, FIRST, {"b": b"22"}, removed=("a", "never-written"), counter=2, must_exist=True)
    assert backend.flush(request)
    assert raw(address) == {META: packed(request.meta), b"b": b"22", b"c": b"3"}


def test_a_write_from_nothing_replaces_what_the_hash_holds(backend: Backend, raw: Raw) -> None:
    """A writer that starts from nothing (a fresh start left a newer version's values in place)
    signs only its own fields: every other value goes, or the next read would bail out."""
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"a": b"1", "b": b"2"}))
    fresh = flush_request(address, FIRST, {"b": b"fresh"}, counter=2)
    assert backend.flush(fresh)
    assert raw(address) == {META: packed(fresh.meta), b"b": b"fresh"}


def test_state_expires_after_its_ttl(backend: Backend, raw: Raw) -> None:
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"k": b"v"}, ttl=0.3))
    assert backend.peek_generation(address) == FIRST
    time.sleep(0.6)
    assert backend.peek_generation(address) is None
    assert raw(address) is None
    assert take(backend, address).reason == "miss"


def test_takeover_and_flush_refresh_the_ttl(backend: Backend) -> None:
    address = new_address()
    ttl = 0.8
    assert backend.flush(flush_request(address, FIRST, {"k": b"v"}, ttl=ttl))
    time.sleep(0.5)
    generation = backend.takeover(address, "v1", ttl, NO_LIMIT).generation
    time.sleep(0.5)  # past the first expiry: only the takeover's refresh keeps it
    assert backend.peek_generation(address) == generation
    assert backend.flush(flush_request(address, generation, {"k": b"w"}, ttl=ttl, must_exist=True))
    time.sleep(0.5)  # past the takeover's expiry: only the flush's refresh keeps it
    assert backend.peek_generation(address) == generation


@pytest.mark.parametrize(
    ("schema_tag", "budget", "reason"),
    [("v2", NO_LIMIT, "schema-reset"), ("v1", SessionBudget(max_keys=1), "over-budget")],
)
def test_a_takeover_that_reads_nothing_still_refreshes_the_ttl(
    backend: Backend, schema_tag: str, budget: SessionBudget, reason: str
) -> None:
    address = new_address()
    ttl = 0.8
    assert backend.flush(flush_request(address, FIRST, {"a": b"1", "b": b"2"}, ttl=ttl))
    time.sleep(0.5)
    assert backend.takeover(address, schema_tag, ttl, budget).reason == reason
    time.sleep(0.5)  # past the flush's expiry
    assert backend.peek_generation(address) == FIRST + 1


def reassert(
    backend: Backend, address: str, generation: int, *, manifest: bytes = b"", opened: int = 0, ttl: float = TTL
) -> Reasserted:
    return backend.reassert(address, "v1", ttl, generation=generation, manifest=manifest, opened=opened)


def test_a_reconnect_to_the_holder_bumps_its_generation_and_keeps_the_values(backend: Backend, raw: Raw) -> None:
    address = new_address()
    ttl = 0.8
    request = flush_request(address, FIRST, {"k": b"v"}, ttl=ttl)
    assert backend.flush(request)
    time.sleep(0.5)
    assert reassert(backend, address, FIRST, ttl=ttl) == Reasserted("held", FIRST + 1)
    time.sleep(0.5)  # past the flush's expiry: only the reconnect keeps it
    assert raw(address) == {META: packed(request.meta, FIRST + 1), b"k": b"v"}
    opened = connection_generation(time.time())
    assert reassert(backend, address, FIRST + 1, opened=opened) == Reasserted("held", opened), (
        "at least the reconnect's time, so an older connection processed late cannot take it"
    )
    assert backend.takeover(address, "v1", TTL, NO_LIMIT, opened=opened - 1000).reason == "stale"


def test_a_reconnect_wins_over_a_takeover_that_wrote_nothing_since(backend: Backend, raw: Raw) -> None:
    """Chaos seed 920: B took the session over (it read the state) but its page never reached the
    user, who came back to A's live kernel. A's kernel shows what B read, and more: A holds it."""
    address = new_address()
    request = flush_request(address, FIRST, {"k": b"v"})
    assert backend.flush(request)
    b_opened = connection_generation(time.time())
    assert backend.takeover(address, "v1", TTL, NO_LIMIT, opened=b_opened).generation == b_opened
    back = b_opened + 1000
    answer = reassert(backend, address, FIRST, manifest=request.meta.manifest, opened=back)
    assert answer == Reasserted("held", back)
    assert raw(address) == {META: packed(request.meta, back), b"k": b"v"}
    b_write = flush_request(address, b_opened, {"k": b"b"}, counter=2, must_exist=True)
    assert backend.flush(b_write) is False, "B is fenced out"


def test_a_reconnect_loses_to_a_later_connection_and_to_a_holder_that_wrote(backend: Backend, raw: Raw) -> None:
    address = new_address()
    request = flush_request(address, FIRST, {"k": b"v"})
    assert backend.flush(request)
    opened = connection_generation(time.time())
    later = backend.takeover(address, "v1", TTL, NO_LIMIT, opened=opened + 1000)
    before = raw(address)
    mine = request.meta.manifest
    assert reassert(backend, address, FIRST, manifest=mine, opened=opened) == Reasserted("later", opened + 1000)
    assert raw(address) == before, "nothing bumped"
    assert backend.flush(flush_request(address, later.generation, {"k": b"b"}, counter=2, must_exist=True))
    before = raw(address)
    answer = reassert(backend, address, FIRST, manifest=mine, opened=opened + 5000)
    assert answer == Reasserted("written", opened + 1000), "its values are newer than the kernel's"
    assert raw(address) == before


def test_a_reconnect_claims_a_session_whose_state_is_gone_or_only_claimed(backend: Backend, raw: Raw) -> None:
    opened = connection_generation(time.time())
    gone = new_address()  # expired, or Redis restarted without its data
    assert reassert(backend, gone, FIRST, opened=opened) == Reasserted("claimed", opened)
    assert raw(gone) == {META: schema_digest("v1") + bytes(24) + str(opened).encode()}
    address = new_address()
    request = flush_request(address, FIRST, {"k": b"v"})
    assert backend.flush(request)
    # a page that started without Redis claimed it (dropping the values), and wrote nothing yet
    assert backend.claim(address, "v1", TTL, FIRST, [request.meta.key_id], opened) == opened
    answer = reassert(backend, address, FIRST, manifest=request.meta.manifest, opened=opened + 1000)
    assert answer == Reasserted("claimed", opened + 1000)
    assert raw(address) == {META: schema_digest("v1") + bytes(24) + str(opened + 1000).encode()}


def test_delete_is_fenced_by_generation(backend: Backend, raw: Raw) -> None:
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"k": b"v"}))
    assert take(backend, address).generation == FIRST + 1
    assert backend.delete(address, FIRST) is False, (
        "a superseded instance must not delete the new owner's state"
    )
    assert raw(address) is not None
    assert backend.delete(address, FIRST + 1) is True
    assert raw(address) is None
    assert backend.delete(address, FIRST + 1) is False
    assert backend.flush(flush_request(address, FIRST, {"k": b"v"}))
    assert backend.delete(address) is True, "without a generation the delete is unconditional"
    assert backend.delete(address) is False
    assert raw(address) is None


def test_flush_many_answers_each_request_in_order(backend: Backend, raw: Raw) -> None:
    current, stale, fresh, gone = (new_address() for _ in range(4))
    assert backend.flush(flush_request(current, FIRST, {"k": b"0"}))
    assert backend.flush(flush_request(stale, FIRST, {"k": b"0"}))
    take(backend, stale)  # now at FIRST + 1
    results = backend.flush_many(
        [
            flush_request(current, FIRST, {"k": b"current"}, must_exist=True),
            flush_request(stale, FIRST, {"k": b"stale"}),
            flush_request(fresh, FIRST, {"k": b"fresh"}),
            flush_request(gone, FIRST, {"k": b"gone"}, must_exist=True),
        ]
    )
    assert results == [True, False, True, False]
    assert raw(current)[b"k"] == b"current"  # type: ignore[index]
    assert raw(stale)[b"k"] == b"0"  # type: ignore[index]
    assert raw(fresh)[b"k"] == b"fresh"  # type: ignore[index]
    assert raw(gone) is None
    assert backend.flush_many([]) == []


BAD_ADDRESSES = [
    "",
    "A" * 21,
    "A" * 23,
    "5b6c7d8e-0000-4000-8000-123456789abc",  # a kernel id is never an address
    "5b6c7d8e000040008000123456789abc",
    "../" + "A" * 19,
    *("A" * 21 + tail for tail in (" ", "\n", "é", ":", "*", "\x00", "+", "/", "=")),
    b"A" * 22,  # not even a str
]


@pytest.mark.parametrize("bad", BAD_ADDRESSES)
def test_invalid_addresses_are_refused_by_every_verb(backend: Backend, raw: Raw, bad: str) -> None:
    good = new_address()
    request = attrs.evolve(flush_request(good, FIRST, {"k": b"v"}), address=bad)
    calls: list[Callable[[], object]] = [
        lambda: backend.takeover(bad, "v1", TTL, NO_LIMIT),
        lambda: backend.flush(request),
        lambda: backend.flush_many([request]),
        lambda: backend.peek_generation(bad),
        lambda: reassert(backend, bad, FIRST),
        lambda: backend.delete(bad),
        lambda: backend.delete(bad, FIRST),
    ]
    for call in calls:
        with pytest.raises(InvalidIdentifierError, match="is not a session address"):
            call()
    assert raw(good) is None


@pytest.mark.parametrize("flaw", ["address", "field", "removed", "meta"])
def test_flush_many_refuses_the_whole_batch_before_writing_any(backend: Backend, raw: Raw, flaw: str) -> None:
    """One refused request refuses the batch, and nothing of it is written: not even the requests
    ahead of the bad one (a caller that sees the error must not find half its batch applied)."""
    first, second = new_address(), new_address()
    good = flush_request(first, FIRST, {"k": b"v"})
    bad = flush_request(second, FIRST, {"k": b"v"})
    bad = {
        "address": attrs.evolve(bad, address="not an address"),
        "field": attrs.evolve(bad, fields={"k": b"v", "\x00g": b"99"}),
        "removed": attrs.evolve(bad, removed=("",)),
        "meta": attrs.evolve(bad, meta=attrs.evolve(bad.meta, mac=b"\x00" * 32)),
    }[flaw]
    with pytest.raises(InvalidIdentifierError):
        backend.flush_many([good, bad])
    assert raw(first) is None, "the valid request ahead of the refused one was written"
    assert raw(second) is None


@pytest.mark.parametrize(
    ("fields", "removed"),
    [
        ({"ok": b"v", META_FIELD: b"99"}, ()),
        ({"ok": b"v", "\x00generation": b"99"}, ()),
        ({"ok": b"v", "": b"empty"}, ()),
        ({"ok": b"v"}, (META_FIELD,)),
        ({"ok": b"v"}, ("\x00g",)),
        ({"ok": b"v"}, ("",)),
    ],
)
def test_a_field_posing_as_meta_or_without_a_name_is_refused_before_anything_is_written(
    backend: Backend, raw: Raw, fields: dict[str, bytes], removed: tuple[str, ...]
) -> None:
    address, existing = new_address(), new_address()
    assert backend.flush(flush_request(existing, FIRST, {"ok": b"before"}))
    before = raw(existing)
    for target in (address, existing):
        request = flush_request(target, FIRST, fields, removed=removed, counter=2)
        with pytest.raises(InvalidIdentifierError, match="empty or starts with NUL"):
            backend.flush(request)
        with pytest.raises(InvalidIdentifierError, match="empty or starts with NUL"):
            backend.flush_many([request])
    assert raw(address) is None
    assert raw(existing) == before


@pytest.mark.parametrize(
    "change",
    [
        {"tag": b"\x01\x02\x03"},
        {"tag": b"\x01\x02\x03\x04\x05"},
        {"key_id": b"key"},
        {"key_id": b"key-1"},
        {"mac": b"\x00" * 15},
        {"mac": b"\x00" * 32},
        {"mac": b""},
    ],
    ids=lambda change: f"{next(iter(change))}-{len(next(iter(change.values())))}",
)
def test_a_meta_of_the_wrong_shape_is_refused(backend: Backend, raw: Raw, change: dict[str, bytes]) -> None:
    address = new_address()
    request = flush_request(address, FIRST, {"k": b"v"})
    request = attrs.evolve(request, meta=attrs.evolve(request.meta, **change))
    with pytest.raises(InvalidIdentifierError, match="wrong shape"):
        backend.flush(request)
    with pytest.raises(InvalidIdentifierError, match="wrong shape"):
        backend.flush_many([request])
    assert raw(address) is None


@pytest.mark.parametrize("counter", [1 << 32, -1])
def test_a_counter_outside_its_four_bytes_is_refused_before_anything_is_written(
    backend: Backend, raw: Raw, counter: int
) -> None:
    """The counter is a 4-byte part of the meta (the engine wraps it at 2**32): one that does not
    fit is a meta of the wrong shape, refused like the others, with the stored state untouched."""
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"k": b"v"}))
    before = raw(address)
    request = flush_request(address, FIRST, {"n": b"new"}, schema_tag="v2")  # a write that would wipe
    request = attrs.evolve(request, meta=attrs.evolve(request.meta, counter=counter))
    try:
        backend.flush(request)
    except Exception as error:  # the stored state is checked first, whatever was raised
        raised: Exception | None = error
    else:
        raised = None
    assert raw(address) == before, "the refused write changed the stored state"
    assert backend.peek_generation(address) == FIRST
    assert isinstance(raised, InvalidIdentifierError), f"refused with {raised!r}"


@pytest.mark.parametrize("generation", [-1, 10**18])
def test_a_generation_the_backend_could_not_read_back_is_refused(
    backend: Backend, raw: Raw, generation: int
) -> None:
    """A backend must never store a meta field its own takeover then calls corrupt (the
    generation is at most 18 ASCII digits, see ``Meta.unpack`` and ``takeover.lua``)."""
    address = new_address()
    with pytest.raises(InvalidIdentifierError):
        backend.flush(flush_request(address, generation, {"k": b"v"}))
    assert raw(address) is None


def test_concurrent_takeovers_hand_out_distinct_generations(backend: Backend) -> None:
    """Atomicity: racing instances never share a generation, so exactly one can write."""
    address = new_address()
    assert backend.flush(flush_request(address, FIRST, {"k": b"v"}))
    generations: list[int] = []
    lock = threading.Lock()

    def racer() -> None:
        for _ in range(20):
            generation = take(backend, address).generation
            with lock:
                generations.append(generation)

    threads = [threading.Thread(target=racer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(generations) == list(range(FIRST + 1, FIRST + 81))


# -- a session is its cookie and its kernel id -----------------------------------------------------


def test_session_addresses_are_digests_of_cookie_and_kernel_id() -> None:
    session_id, kernel_id = cookie(), kernel()
    address = session_address(session_id, kernel_id)
    assert ADDRESS.fullmatch(address) and len(address) == 22
    assert session_address(session_id, kernel_id) == address, "stable across processes and key rotations"
    assert session_address(cookie(), kernel_id) != address, "another cookie, another hash"
    assert session_address(session_id, kernel()) != address, "another kernel, another hash"
    assert session_address("ab", "c") != session_address("a", "bc"), "the parts are length-prefixed"
    assert kernel_id not in address and session_id not in address


@pytest.mark.parametrize("first", ["owner", "other"])
def test_two_cookies_on_one_kernel_never_see_each_others_state(
    backend: Backend, raw: Raw, first: str
) -> None:
    kernel_id = kernel()
    owner, other = new_address(kernel_id), new_address(kernel_id)
    assert owner != other
    values = {owner: {"k": b"owner's", "only.owner": b"1"}, other: {"k": b"other's", "only.other": b"2"}}
    order = (owner, other) if first == "owner" else (other, owner)

    for address in order:
        assert take(backend, address).reason == "miss"
    # Both start at the same generation on purpose: fencing is per address, not per kernel.
    for address in order:
        assert backend.flush(flush_request(address, FIRST, values[address]))
    for address in order:
        assert outcome(take(backend, address)) == ("restored", FIRST + 1, named(values[address]))

    # The owner takes over again: only the owner's generation moves.
    assert take(backend, owner).generation == FIRST + 2
    assert backend.peek_generation(other) == FIRST + 1
    assert backend.flush(flush_request(other, FIRST + 1, {"k": b"other again"}, counter=2, must_exist=True))
    assert backend.flush(flush_request(owner, FIRST + 1, {"k": b"stale owner"}, counter=2)) is False
    assert raw(owner)[b"k"] == b"owner's"  # type: ignore[index]
    assert raw(other)[b"k"] == b"other again"  # type: ignore[index]

    assert backend.delete(other, FIRST + 2) is False, "the owner's generation does not open the other's hash"
    assert backend.delete(owner, FIRST + 2)
    assert raw(owner) is None
    assert take(backend, other).fields == {b"k": b"other again", b"only.other": b"2"}


def test_a_stranger_writing_first_never_locks_the_owner_out(backend: Backend, raw: Raw) -> None:
    """Knowing a kernel id (it travels in URLs and logs) gives a stranger nothing: their writes land
    in their own hash, and the owner's first takeover is an ordinary miss, not a fence or a clash."""
    kernel_id = kernel()
    stranger, owner = new_address(kernel_id), new_address(kernel_id)
    squat = flush_request(stranger, FIRST + 1_000, {"k": b"stranger's", "extra": b"x"})
    assert backend.flush(squat)
    assert take(backend, stranger).generation == FIRST + 1_001  # and keeps taking it over

    assert take(backend, owner) == Takeover("miss", 0)
    assert backend.flush(flush_request(owner, FIRST, {"k": b"mine"}))
    assert outcome(take(backend, owner)) == ("restored", FIRST + 1, {b"k": b"mine"})
    assert backend.flush(flush_request(owner, FIRST + 1, {"k": b"mine 2"}, counter=2, must_exist=True))
    assert raw(stranger) == {META: packed(squat.meta, FIRST + 1_001), **named(squat.fields)}
    assert backend.delete(stranger)
    assert take(backend, owner).fields == {b"k": b"mine 2"}, "deleting the stranger's hash leaves the owner's"


# -- memory and Redis store the same bytes --------------------------------------------------------


def test_memory_stores_exactly_the_bytes_redis_stores(
    redis_url: str, redis_client: redis.Redis, prefix: str
) -> None:
    """The same sequence on both backends: same replies, same stored bytes, same absent keys."""
    memory = MemoryBackend(Settings(backend="memory", prefix=prefix))
    shared = RedisBackend(Settings(backend="redis", url=redis_url, prefix=prefix))
    main, second = new_address(), new_address()
    v2 = {"schema_tag": "v2", "must_exist": True}
    replies: dict[str, list[object]] = {}
    for name, backend in (("memory", memory), ("redis", shared)):
        log = replies[name] = []
        log.append(backend.flush(flush_request(main, FIRST, {"a": b"\x00\x01", "b": b"2", "c": b"3"})))
        log.append(take(backend, main, "v2"))  # schema reset, data kept
        log.append(backend.flush(flush_request(main, FIRST + 1, {"d": b"4"}, removed=("x",), **v2)))  # wipes
        log.append(
            backend.flush(flush_request(main, FIRST + 1, {"e": b"5" * 10, "f": b"6" * 10}, counter=2, **v2))
        )
        log.append(take(backend, main, "v2", SessionBudget(max_keys=2)))
        # 1 + 10 + 10 bytes: crossed at the last field (an earlier crossing: see the amount test)
        log.append(take(backend, main, "v2", SessionBudget(max_bytes=20)))
        log.append(take(backend, main, "v2", SessionBudget(max_keys=3, max_bytes=21)))
        log.append(backend.flush(flush_request(main, FIRST + 3, {"e": b"stale"}, counter=3, **v2)))
        log.append(backend.flush(flush_request(second, FIRST, {"k": b"v"})))
        log.append(backend.delete(second, FIRST))
        log.append(backend.flush(flush_request(second, FIRST, {"k": b"w"}, must_exist=True)))
        log.append(
            backend.flush_many([flush_request(second, FIRST + 9, {"k": b"x"}), flush_request(main, 1, {})])
        )
        log.append((backend.peek_generation(main), reassert(backend, second, FIRST + 9)))
    assert replies["memory"] == replies["redis"]
    assert [getattr(reply, "reason", reply) for reply in replies["redis"]] == [
        True, "schema-reset", True, True, "over-budget", "over-budget", "restored",
        False, True, True, False, [True, False], (FIRST + 4, Reasserted("held", FIRST + 10)),
    ]  # fmt: skip

    last = make_meta(main, FIRST + 1, {"e": b"5" * 10, "f": b"6" * 10}, schema_tag="v2", counter=2)
    expected = {META: packed(last, FIRST + 4), b"d": b"4", b"e": b"5" * 10, b"f": b"6" * 10}
    assert redis_client.hgetall(prefix + main) == memory.raw(main) == expected
    assert redis_client.hgetall(prefix + second) == memory.raw(second)
    assert sorted(redis_client.keys(prefix + "*")) == sorted(
        [(prefix + main).encode(), (prefix + second).encode()]
    )
    shared.close()


# -- Redis only -----------------------------------------------------------------------------------


@pytest.fixture
def redis_backend(redis_url: str, prefix: str) -> Iterator[RedisBackend]:
    backend = RedisBackend(Settings(backend="redis", url=redis_url, prefix=prefix))
    yield backend
    backend.close()


def test_a_miss_creates_no_key_in_redis(redis_backend: RedisBackend, redis_client: redis.Redis) -> None:
    address = new_address()
    assert take(redis_backend, address).reason == "miss"
    assert redis_backend.peek_generation(address) is None
    assert redis_backend.delete(address, FIRST) is False
    assert redis_backend.delete(address) is False
    assert redis_backend.flush(flush_request(address, FIRST, {"k": b"v"}, must_exist=True)) is False
    assert redis_backend.flush_many([flush_request(address, FIRST, {"k": b"v"}, must_exist=True)]) == [False]
    assert redis_client.dbsize() == 0, "no verb creates a key for a session without state"


def test_a_claim_refused_at_maxmemory_leaves_the_miss_unclaimed(
    redis_backend: RedisBackend, redis_client: redis.Redis
) -> None:
    address = new_address()
    redis_client.config_set("maxmemory", 1)  # noeviction (the suite's setting): every write is refused
    try:
        assert redis_client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert take_claiming(redis_backend, address) == ("miss", 0)
    finally:
        redis_client.config_set("maxmemory", 0)
    assert redis_backend.peek_generation(address) is None
    assert take_claiming(redis_backend, address) == ("miss", FIRST)


def test_a_claim_refused_at_maxmemory_changes_nothing(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str
) -> None:
    address = new_address()
    assert redis_backend.flush(flush_request(address, FIRST, {"shop.page": b"p"}))
    before = redis_client.hgetall(prefix + address)
    redis_client.config_set("maxmemory", 1)
    try:
        with pytest.raises(BackendError):
            redis_backend.claim(address, "v1", TTL, FIRST + 5, [make_meta(address, FIRST, {}).key_id], FIRST + 5)
    finally:
        redis_client.config_set("maxmemory", 0)
    assert redis_client.hgetall(prefix + address) == before


def take_claiming(backend: Backend, address: str) -> tuple[str, int]:
    took = backend.takeover(address, "v1", TTL, NO_LIMIT, claim=FIRST)
    return took.reason, took.generation


def test_a_claim_costs_at_most_144_bytes_of_redis_memory(redis_url: str, redis_client: redis.Redis) -> None:
    """A page that only looks holds its claim until its tab closes (a fenced delete) or its TTL.

    On redis-server 7.0: object header (16), dict entry (24), the 29-character key (32) and a
    listpack of the meta field with a 13-digit generation (a connection's opening time in ms, 64):
    136 bytes, 7 million idle pages a GB.
    """
    backend = RedisBackend(Settings(backend="redis", url=redis_url))  # the default prefix: its length counts
    address = new_address()
    generation = connection_generation(time.time())
    assert backend.takeover(address, "v1", TTL, NO_LIMIT, claim=generation, opened=generation).generation == generation
    used = redis_client.memory_usage(Settings().prefix + address, samples=0)
    assert used <= 144, f"MEMORY USAGE of a claim is {used} bytes"
    assert backend.delete(address, generation)
    backend.close()


def test_the_key_name_never_contains_the_kernel_id_or_the_cookie(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str
) -> None:
    kernel_id = kernel()
    sessions = {cookie(): None for _ in range(3)}
    for session_id in sessions:
        address = session_address(session_id, kernel_id)
        assert redis_backend.flush(flush_request(address, FIRST, {"k": session_id.encode()}))
        sessions[session_id] = address  # type: ignore[assignment]
    keys = sorted(key.decode() for key in redis_client.keys("*"))
    assert keys == sorted(prefix + address for address in sessions.values()), "one key per session"
    for key in keys:
        assert re.fullmatch(re.escape(prefix) + ADDRESS.pattern, key)
        for secret in (kernel_id, kernel_id.replace("-", ""), *sessions):
            assert secret not in key
    for session_id, address in sessions.items():
        assert redis_client.hget(prefix + address, "k") == session_id.encode()  # type: ignore[operator]


@pytest.mark.parametrize(
    "stored",
    [
        b"garbage",
        b"",
        b"x" * 28,
        b"x" * 28 + b"12a",
        b"x" * 28 + b"-1",
        b"x" * 28 + b" 7",
        b"x" * 28 + b"9" * 19,
    ],
    ids=["garbage", "empty", "no-generation", "not-digits", "negative", "space", "19-digits"],
)
def test_a_corrupt_meta_field_is_reported_and_left_untouched(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str, stored: bytes
) -> None:
    address = new_address()
    key = prefix + address
    redis_client.hset(key, mapping={META: stored, b"k": b"v"})
    before = redis_client.hgetall(key)
    assert take(redis_backend, address) == Takeover("corrupt", 0)
    assert redis_client.hgetall(key) == before
    assert redis_client.pttl(key) == -1, "not even its expiry is touched"
    with pytest.raises(BackendError, match="not a manifest and a generation"):
        redis_backend.peek_generation(address)
    assert redis_backend.flush(flush_request(address, FIRST, {"k": b"mine"})) is False, (
        "a hash that is there is never written over without its generation"
    )
    assert redis_client.hgetall(key) == before
    assert redis_backend.delete(address), "the engine's bail-out deletes it unconditionally"
    assert redis_backend.flush(flush_request(address, FIRST, {"k": b"mine"}))


def test_a_well_formed_meta_planted_by_hand_is_read_like_a_written_one(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str
) -> None:
    """The documented layout, written without ``Meta.pack``, is what the scripts parse."""
    address = new_address()
    mac = bytes(range(16))
    redis_client.hset(
        prefix + address, mapping={META: schema_digest("v1") + b"kid1" + b"\x00\x00\x01\x02" + mac + b"41"}
    )
    takeover = take(redis_backend, address)
    assert (takeover.reason, takeover.generation) == ("restored", 42)
    assert takeover.meta == Meta(tag_digest("v1"), b"kid1", 258, mac, 41)


def _reads_of_values(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name: stats.get(f"cmdstat_{name}", {}).get("calls", 0)
        for name in ("hgetall", "hvals", "hmget", "hscan", "hrandfield", "hget")
    }


@pytest.mark.parametrize("budget", [SessionBudget(max_keys=2), SessionBudget(max_bytes=100)])
def test_over_budget_is_detected_without_reading_the_values(
    redis_backend: RedisBackend, redis_client: redis.Redis, budget: SessionBudget
) -> None:
    """Counted on the server: the bail-out reads the meta field (one HGET) and value lengths, never a value."""
    address = new_address()
    values = {f"k{i}": b"x" * 60 for i in range(3)}
    assert redis_backend.flush(flush_request(address, FIRST, values))
    before = _reads_of_values(redis_client)
    takeover = take(redis_backend, address, budget=budget)
    assert (takeover.reason, dict(takeover.fields)) == ("over-budget", {})
    after = _reads_of_values(redis_client)
    assert {name: after[name] - before[name] for name in after} == {
        "hgetall": 0, "hvals": 0, "hmget": 0, "hscan": 0, "hrandfield": 0, "hget": 1,
    }  # fmt: skip
    assert redis_backend.delete(address, takeover.generation)
    # The control: a takeover that restores does read the values, and the count shows it.
    assert redis_backend.flush(flush_request(address, FIRST, values))
    before = _reads_of_values(redis_client)
    assert take(redis_backend, address).reason == "restored"
    assert _reads_of_values(redis_client)["hgetall"] - before["hgetall"] == 1


def test_ttl_is_set_and_refreshed_in_milliseconds(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str
) -> None:
    address = new_address()
    key = prefix + address

    def refreshed() -> bool:
        return redis_client.pttl(key) > 99_000

    assert redis_backend.flush(flush_request(address, FIRST, {"a": b"1", "b": b"2"}, ttl=100))
    assert 99_000 < redis_client.pttl(key) <= 100_000
    steps: list[tuple[str, Callable[[], object], bool]] = [
        ("restoring takeover", lambda: redis_backend.takeover(address, "v1", 100, NO_LIMIT), True),
        ("schema-reset takeover", lambda: redis_backend.takeover(address, "v2", 100, NO_LIMIT), True),
        ("over-budget takeover", lambda: redis_backend.takeover(address, "v1", 100, SessionBudget(1)), True),
        ("flush", lambda: redis_backend.flush(flush_request(address, FIRST + 3, {"a": b"w"}, ttl=100)), True),
        ("reconnect", lambda: reassert(redis_backend, address, FIRST + 3, ttl=100), True),
        (
            "fenced-out flush",
            lambda: redis_backend.flush(flush_request(address, FIRST, {"a": b"x"}, ttl=100)),
            False,
        ),
        ("peek", lambda: redis_backend.peek_generation(address), False),
        ("fenced-out delete", lambda: redis_backend.delete(address, FIRST), False),
    ]
    for what, step, refreshes in steps:
        redis_client.pexpire(key, 5_000)
        step()
        assert refreshed() is refreshes, f"{what} {'refreshes' if refreshes else 'must not touch'} the TTL"
    assert redis_backend.peek_generation(address) == FIRST + 4


def test_flush_many_is_one_round_trip(redis_backend: RedisBackend, redis_client: redis.Redis) -> None:
    """Counted on the server: ``total_reads_processed`` grows by one per socket read.

    A pipelined batch arrives as one write on the backend's connection, so the server reads it
    once; the same requests one by one would cost one read each. The INFO call that takes the
    second reading is itself one read, hence ``+ 1``.
    """
    redis_backend.ping()  # connect and handshake first, so only the batch is counted
    requests = [flush_request(new_address(), FIRST, {"k": b"v" * 20}) for _ in range(10)]
    before = redis_client.info("stats")["total_reads_processed"]
    assert redis_backend.flush_many(requests) == [True] * 10
    after = redis_client.info("stats")["total_reads_processed"]
    assert after - before == 1 + 1
    before = after
    for one in requests:
        assert redis_backend.flush(one)
    assert redis_client.info("stats")["total_reads_processed"] - before == len(requests) + 1


def test_a_reconnect_is_one_round_trip(redis_backend: RedisBackend, redis_client: redis.Redis) -> None:
    """One script call, its script cached (counted as in ``test_flush_many_is_one_round_trip``)."""
    address = new_address()
    assert redis_backend.flush(flush_request(address, FIRST, {"k": b"v"}))
    assert reassert(redis_backend, address, FIRST).held  # loads the script
    before = redis_client.info("stats")["total_reads_processed"]
    assert reassert(redis_backend, address, FIRST + 1) == Reasserted("held", FIRST + 2)
    assert redis_client.info("stats")["total_reads_processed"] - before == 1 + 1


def test_a_batch_shares_script_calls_and_each_session_lands_in_its_own_hashes(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str
) -> None:
    """Standalone, ``SESSIONS_PER_CALL`` sessions go in one script call (counted on the server);
    sessions with shared values (two keys) and without (one) mix in a call, each fenced alone."""
    redis_backend.ping()
    sessions = 2 * SESSIONS_PER_CALL + 5
    addresses = [new_address() for _ in range(sessions)]
    requests = []
    for i, address in enumerate(addresses):
        request = flush_request(address, FIRST, {"k": b"v%d" % i})
        if i % 3 == 0:
            request = attrs.evolve(request, shared={"s": pack_stamp(1_000_000 + i) + b"s%d" % i})
        requests.append(request)
    fenced = addresses[SESSIONS_PER_CALL + 1]
    assert redis_backend.flush(flush_request(fenced, FIRST + 1, {"k": b"newer"}))
    calls = lambda: redis_client.info("commandstats")["cmdstat_evalsha"]["calls"]  # noqa: E731
    before = calls()
    assert redis_backend.flush_many(requests) == [address != fenced for address in addresses]
    assert calls() - before == 3
    for i, address in enumerate(addresses):
        assert redis_client.hget(prefix + address, "k") == (b"newer" if address == fenced else b"v%d" % i)
        shared = redis_client.hget(prefix + shared_address(address), "s")
        assert shared == (pack_stamp(1_000_000 + i) + b"s%d" % i if i % 3 == 0 and address != fenced else None)


def test_a_pipeline_leaves_in_one_socket_write(
    redis_backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py cuts a pipeline into 6 KB pieces, one socket write each; every write releases the
    GIL, which a busy process hands back only after its switch interval."""
    pieces: list[int] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counting(self: redis.connection.AbstractConnection, command: object, check_health: bool = True) -> None:
        pieces.append(len(command) if isinstance(command, list) else 1)
        send(self, command, check_health)

    redis_backend.ping()
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    requests = [flush_request(new_address(), FIRST, {"k": b"v" * 300}) for _ in range(200)]
    assert redis_backend.flush_many(requests) == [True] * 200
    assert pieces == [1], "60 KB of requests in one write"


def test_lost_script_cache_is_reloaded(redis_backend: RedisBackend, redis_client: redis.Redis) -> None:
    """After a restart or failover the server forgets scripts; every verb must still work."""
    first, second = new_address(), new_address()
    assert redis_backend.flush(flush_request(first, FIRST, {"k": b"v"}))
    redis_client.script_flush()
    assert redis_backend.flush_many(
        [flush_request(first, FIRST, {"k": b"w"}, must_exist=True), flush_request(second, FIRST, {"k": b"v"})]
    ) == [True, True]
    redis_client.script_flush()
    assert take(redis_backend, first).fields == {b"k": b"w"}
    redis_client.script_flush()
    assert redis_backend.flush(flush_request(first, FIRST + 1, {"k": b"x"}, must_exist=True))
    redis_client.script_flush()
    assert redis_backend.delete(first, FIRST + 1)


def test_redis_error_replies_become_backend_errors(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str
) -> None:
    broken, fine = new_address(), new_address()
    redis_client.set(prefix + broken, b"not a hash")
    with pytest.raises(BackendError, match=r"redis takeover .* WRONGTYPE.*Fix: .*SOLARA_STATE_PREFIX"):
        take(redis_backend, broken)
    with pytest.raises(BackendError, match=r"redis flush .* WRONGTYPE"):
        redis_backend.flush(flush_request(broken, FIRST, {"k": b"v"}))
    with pytest.raises(BackendError, match=r"redis delete .* WRONGTYPE"):
        redis_backend.delete(broken, FIRST)
    results = redis_backend.flush_many(
        [flush_request(broken, FIRST, {"k": b"v"}), flush_request(fine, FIRST, {"k": b"v"})]
    )
    assert isinstance(results[0], BackendError)
    assert "WRONGTYPE" in str(results[0])
    assert results[1] is True
    assert redis_client.get(prefix + broken) == b"not a hash"


def test_unreachable_server_raises_backend_error(redis_client: redis.Redis) -> None:
    closed = closed_port()  # nothing listens there
    backend = RedisBackend(
        Settings(backend="redis", url=f"redis://127.0.0.1:{closed}/0", connect_timeout=0.2)
    )
    calls: list[tuple[str, Callable[[], object]]] = [
        ("takeover", lambda: take(backend, new_address())),
        ("flush", lambda: backend.flush(flush_request(new_address(), FIRST, {"k": b"v"}))),
        ("flush_many", lambda: backend.flush_many([flush_request(new_address(), FIRST, {"k": b"v"})])),
        ("peek_generation", lambda: backend.peek_generation(new_address())),
        ("reassert", lambda: reassert(backend, new_address(), FIRST)),
        ("delete", lambda: backend.delete(new_address(), FIRST)),
        ("ping", backend.ping),
        ("eviction_policy", backend.eviction_policy),
    ]
    for operation, call in calls:
        with pytest.raises(BackendError, match=rf"redis {operation} at .*Fix: check that Redis is running"):
            call()


def test_refusals_come_before_any_io() -> None:
    """A bad address, field or meta is refused even with no server to reach: it never got that far."""
    backend = RedisBackend(
        Settings(backend="redis", url=f"redis://127.0.0.1:{closed_port()}/0", connect_timeout=0.2)
    )
    request = flush_request(new_address(), FIRST, {"k": b"v"})
    refused: list[Callable[[], object]] = [
        lambda: backend.takeover("bad", "v1", TTL, NO_LIMIT),
        lambda: backend.peek_generation("bad"),
        lambda: reassert(backend, "bad", FIRST),
        lambda: backend.delete("bad", FIRST),
        lambda: backend.flush(attrs.evolve(request, address="bad")),
        lambda: backend.flush(attrs.evolve(request, fields={"\x00": b"1"})),
        lambda: backend.flush_many([request, attrs.evolve(request, removed=("",))]),
        lambda: backend.flush(attrs.evolve(request, meta=attrs.evolve(request.meta, tag=b"v1"))),
    ]
    for call in refused:
        with pytest.raises(InvalidIdentifierError):
            call()
    backend.close()


def test_a_hung_server_times_out_instead_of_blocking() -> None:
    """A peer that accepts connections but never answers (a frozen server) costs one timeout."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        backend = RedisBackend(Settings(backend="redis", url=url, connect_timeout=0.2))
        started = time.monotonic()
        with pytest.raises(BackendError, match="Timeout"):
            backend.ping()
        # Generous bound: redis-py's defaults (5 s timeout, 10 retries) would take far longer.
        assert time.monotonic() - started < 3.0
        backend.close()


def test_eviction_policy_reports_the_servers_setting(
    redis_backend: RedisBackend, redis_client: redis.Redis
) -> None:
    assert redis_backend.eviction_policy() == "noeviction"
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        assert redis_backend.eviction_policy() == "allkeys-lru"
    finally:
        redis_client.config_set("maxmemory-policy", "noeviction")


#: Bytes per two-small-value session that Solara's built-in engine uses; ours must stay under 60%.
SOLARA_SESSION_BYTES = 424
SESSION_BUDGET = int(0.6 * SOLARA_SESSION_BYTES)


def test_a_small_session_is_one_listpack_within_the_memory_budget(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """An int and a short string, sealed and signed for real, under the default prefix.

    On redis-server 7.0 (jemalloc) ``MEMORY USAGE`` is the object header (16), the dict entry (24),
    the key's allocation and the listpack's allocation. The key is ``solara:`` + a 22-character
    address: 29 characters fit a 32-byte allocation (up to 30 do). The listpack holds the meta field
    (28 bytes + a 13-digit generation: a connection's opening time in ms, as takeovers hand out
    until 2286) and two envelopes, 160 bytes in a 160-byte allocation: 16 + 24 + 32 + 160 = 232.
    One byte more and the listpack takes the 192-byte class, 264 bytes in all, over the budget. (The old layout, a 39-character
    key and a 25-byte meta field with a one-digit generation, measured 16 + 24 + 48 + 160 = 248.)
    """
    backend = RedisBackend(Settings(backend="redis", url=redis_url))  # the default prefix: its length counts
    ring = KeyRing.from_secrets(["a-secret-for-the-memory-test"])
    kernel_id = kernel()
    session_id = cookie()
    address = session_address(session_id, kernel_id)
    payloads = {"shop.page": b"3", "shop.query": b'"shoes"'}
    fields = {
        name: seal(ring, address=address, field=name, codec=Codec.JSON, version=1, payload=payload)
        for name, payload in payloads.items()
    }
    tag = tag_digest("default")
    key_id, mac = ring.sign_manifest(
        address=address,
        tag=tag,
        counter=1,
        fields={name: envelope_tag(data) for name, data in fields.items()},
    )
    generation = connection_generation(time.time())  # as a takeover hands it out
    assert backend.flush(FlushRequest(address, Meta(tag, key_id, 1, mac, generation), fields, TTL))
    assert backend.takeover(address, "default", TTL, NO_LIMIT, opened=generation + 1).fields == named(fields)
    key = Settings().prefix + address
    assert len(key) == len("solara:") + 22
    assert redis_client.keys("*") == [key.encode()], "one key per session, nothing else"
    assert len(redis_client.hget(key, META)) == 28 + 13  # type: ignore[arg-type]
    assert redis_client.object("encoding", key) == b"listpack"
    used = redis_client.memory_usage(key, samples=0)
    assert used <= SESSION_BUDGET, (
        f"MEMORY USAGE of a two-small-value session is {used} bytes, over the budget of {SESSION_BUDGET} "
        f"(60% of Solara's {SOLARA_SESSION_BYTES})"
    )
    backend.close()


@pytest.mark.parametrize("form", ["unix", "sentinel"])
def test_other_url_forms_reach_the_same_state(form: str, prefix: str, request: pytest.FixtureRequest) -> None:
    if form == "unix":
        server: RedisExecutor = request.getfixturevalue("redis_server")
        url = f"unix://{server.unixsocket}?db=0"
    else:
        server = request.getfixturevalue("redis_sentinel_master")
        url = request.getfixturevalue("redis_sentinel_url")
    direct = RedisBackend(
        Settings(backend="redis", url=f"redis://{server.host}:{server.port}/0", prefix=prefix)
    )
    other = RedisBackend(Settings(backend="redis", url=url, prefix=prefix))
    address = new_address()
    assert other.flush(flush_request(address, FIRST, {"k": b"v"}))
    assert take(direct, address).fields == {b"k": b"v"}
    assert other.peek_generation(address) == FIRST + 1
    assert reassert(other, address, FIRST + 1) == Reasserted("held", FIRST + 2)
    assert other.delete(address, FIRST + 2)
    assert direct.peek_generation(address) is None
    other.close()
    direct.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel://127.0.0.1:26379/service/notadb",
        "redis+sentinel://127.0.0.1:port/service",
        "redis+cluster://127.0.0.1:7000/3",
        "redis://127.0.0.1:notaport/0",
        "http://127.0.0.1:6379",
        "127.0.0.1:6379",
    ],
)
def test_malformed_urls_refuse_start_up(url: str) -> None:
    with pytest.raises(ConfigError, match="SOLARA_STATE_URL"):
        create_backend(Settings(backend="redis", url=url))


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://127.0.0.1:6379/0", redis.connection.Connection),
        ("rediss://127.0.0.1:6379/0", redis.connection.SSLConnection),
        ("unix:///tmp/redis.sock?db=1", redis.connection.UnixDomainSocketConnection),
        ("redis+sentinel://127.0.0.1:26379/service", redis.sentinel.SentinelManagedConnection),
        ("rediss+sentinel://127.0.0.1:26379/service", redis.sentinel.SentinelManagedSSLConnection),
    ],
)
def test_every_url_form_keeps_its_transport_and_writes_a_pipeline_in_one_piece(
    url: str, base: type[redis.connection.AbstractConnection]
) -> None:
    """Nothing connects here: the class each form's pool will connect with is checked."""
    client, closers = client_factory(url, 0.3)()
    try:
        connection_class = client.connection_pool.connection_class
        assert issubclass(connection_class, base)
        assert connection_class.pack_commands is not base.pack_commands
    finally:
        client.close()
        for close in closers:
            close()


def test_passwords_never_appear_in_messages() -> None:
    assert redact("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("redis+sentinel://:s3cret@a:1,b:2/svc") == "redis+sentinel://:***@a:1,b:2/svc"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
    backend = RedisBackend(Settings(backend="redis", url=f"redis://u:s3cret@127.0.0.1:{closed_port()}/0"))
    with pytest.raises(BackendError) as failure:
        backend.ping()
    assert "s3cret" not in str(failure.value)


def test_budget_by_bytes_on_a_server_that_refuses_memory_usage_in_scripts(
    tmp_path: pytest.TempPathFactory, prefix: str
) -> None:
    """The script skips its exact count only when MEMORY USAGE says the session is small; a server
    without that command (renamed away here, as some managed services do) gets the exact count."""
    port = closed_port()
    server = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--rename-command", "MEMORY", '""'),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    backend = RedisBackend(Settings(backend="redis", url=f"redis://127.0.0.1:{port}/0", prefix=prefix))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                backend.ping()
                break
            except BackendError:
                assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        address = new_address()
        values = {"a": b"1" * 10, "b": b"2" * 10, "c": b"3" * 10}
        assert backend.flush(flush_request(address, FIRST, values))
        client = redis.Redis(port=port)
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.memory_usage(prefix + address)
        client.close()
        assert take(backend, address, budget=SessionBudget(max_bytes=30)).reason == "restored"
        takeover = take(backend, address, budget=SessionBudget(max_bytes=29))
        assert (takeover.reason, takeover.over, takeover.amount) == ("over-budget", "bytes", 30)
    finally:
        backend.close()
        server.terminate()
        server.wait(10)


def test_the_documented_acl_user_can_run_the_whole_engine(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/operations.md's `ACL SETUSER` line, as written but for the prefix and the password:
    restore (with its look for Solara's format), a claim, writes, a failover, a late claim and a
    tab close all work as that user."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    (line,) = re.findall(r"^ACL SETUSER solara .*$", docs, re.M)
    prefix, user, password = f"acl{uuid.uuid4().hex[:6]}:", f"u{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    monkeypatch.setenv("SOLARA_STATE_PREFIX", prefix)  # what both engines' keys start with
    rules = line.split()[3:]
    rules = [f">{password}" if rule.startswith(">") else f"~{prefix}*" if rule.startswith("~") else rule for rule in rules]
    redis_client.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=[f"{prefix}*"], commands=[r for r in rules if r[0] in "+-"])
    try:
        url = redis_url.replace("redis://", f"redis://{user}:{password}@", 1)
        settings = Settings(backend="redis", url=url, prefix=prefix, secret_keys=("a-secret-for-the-acl-test",), flush_debounce=0.01)
        with registry.isolated():

            @persisted(key="acl.page")
            def page() -> int:
                return 0

            engine = Engine(settings)
            engine.start()
            values = {"acl.page": 3}
            restored = engine.restore("kernel-1", "cookie-1")
            assert restored.result == "miss" and restored.claimed
            session = engine.open_session("kernel-1", restored, lambda keys: {k: values[k] for k in keys})
            engine.mark_dirty(session, "acl.page")
            assert engine.drain(5.0) == 0 and engine.state_block()["flush_ok"] == 1
            again = Engine(settings)
            assert dict(again.restore("kernel-1", "cookie-1").values) == {"acl.page": 3}
            assert engine.restorer.claim("kernel-1", session.address, connection_generation(time.time()) + 1000) > 0
            engine.close_session(session, "page-close")
            assert engine.state_block()["backend_last_error"] is None
            engine.close()
            again.close()
    finally:
        redis_client.acl_deluser(user)
