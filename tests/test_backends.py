"""The backend contract, one suite run against ``memory`` and a real redis-server.

Each test states one rule of the contract (miss writes nothing, identity check, schema reset,
fencing, rotation, TTL, fenced delete, batching) and checks the stored hash itself, not only
what the backend answers. Redis-only tests below cover what memory cannot: timeouts, the
round-trip count, the script cache, the eviction policy, the compact encoding and URL forms.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from pytest_redis.executor import RedisExecutor

from solara_persisted.backends import create_backend
from solara_persisted.backends.base import META_FIELD, Backend, FlushRequest
from solara_persisted.backends.memory import MemoryBackend
from solara_persisted.backends.redis import RedisBackend, redact
from solara_persisted.config import Settings
from solara_persisted.envelope import Codec, KeyRing, seal
from solara_persisted.errors import BackendError, ConfigError, InvalidIdentifierError

Raw = Callable[[str], "dict[str, bytes] | None"]
TTL = 60.0


def identity(name: str, key_id: bytes = b"key1") -> bytes:
    """A session identity shaped like the key ring's: 4-byte key id + 16 bytes of MAC."""
    return key_id + hashlib.sha256(name.encode()).digest()[:16]


def meta(owner: bytes, schema_tag: str, generation: int) -> bytes:
    """The meta field's value as documented in base.Meta, built by hand rather than by the helper."""
    return owner + hashlib.sha256(schema_tag.encode()).digest()[:4] + str(generation).encode()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


OWNER = identity("owner")
STRANGER = identity("stranger")


def kernel() -> str:
    return str(uuid.uuid4())


def flush_request(
    kernel_id: str, generation: int, fields: dict[str, bytes], **changes: object
) -> FlushRequest:
    options: dict[str, object] = {"identity": OWNER, "schema_tag": "v1", "ttl": TTL, **changes}
    return FlushRequest(kernel_id=kernel_id, generation=generation, fields=fields, **options)  # type: ignore[arg-type]


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
    """Read a kernel's stored hash directly (meta fields included), None when the key is absent."""
    if isinstance(backend, MemoryBackend):
        return backend.raw
    client: redis.Redis = request.getfixturevalue("redis_client")

    def read(kernel_id: str) -> dict[str, bytes] | None:
        key = settings.prefix + kernel_id
        if not client.exists(key):
            return None
        return {name.decode(): data for name, data in client.hgetall(key).items()}

    return read


# -- the contract, on both backends ---------------------------------------------------------------


def test_miss_returns_generation_one_and_writes_nothing(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    takeover = backend.takeover(kernel_id, [OWNER], "v1", TTL)
    assert (takeover.reason, takeover.generation, dict(takeover.fields)) == ("miss", 1, {})
    assert raw(kernel_id) is None, "a miss must not create the key"
    assert backend.peek_generation(kernel_id) is None


def test_first_flush_creates_the_hash_with_its_meta_field(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    assert backend.flush(flush_request(kernel_id, 1, {"shop.page": b"\x01page", "shop.cart": b"\x02cart"}))
    assert raw(kernel_id) == {
        META_FIELD: meta(OWNER, "v1", 1),
        "shop.page": b"\x01page",
        "shop.cart": b"\x02cart",
    }
    assert backend.peek_generation(kernel_id) == 1


def test_takeover_restores_every_field_and_bumps_the_generation(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    values = {"shop.page": bytes(range(256)), "café.ñame": b"", "user:7:query": b"\x00\xff"}
    assert backend.flush(flush_request(kernel_id, 1, values))
    takeover = backend.takeover(kernel_id, [STRANGER, OWNER], "v1", TTL)  # any accepted identity
    assert (takeover.reason, takeover.generation, dict(takeover.fields)) == ("restored", 2, values)
    assert raw(kernel_id)[META_FIELD] == meta(OWNER, "v1", 2)  # type: ignore[index]
    assert backend.takeover(kernel_id, [OWNER], "v1", TTL).generation == 3


def test_identity_mismatch_gives_no_write_right_and_changes_nothing(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    assert backend.flush(flush_request(kernel_id, 1, {"k": b"mine"}))
    before = raw(kernel_id)
    takeover = backend.takeover(kernel_id, [STRANGER], "v1", TTL)
    assert (takeover.reason, takeover.generation, dict(takeover.fields)) == ("identity-mismatch", 0, {})
    assert takeover.stored_identity == OWNER
    assert backend.flush(flush_request(kernel_id, 0, {"k": b"theirs"}, identity=STRANGER)) is False
    assert raw(kernel_id) == before, "neither the takeover nor the generation-0 flush may write"


def test_generation_zero_never_creates_a_hash(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    assert backend.flush(flush_request(kernel_id, 0, {"k": b"v"})) is False
    assert raw(kernel_id) is None


def test_schema_reset_keeps_data_until_a_new_schema_write_replaces_it(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    assert backend.flush(flush_request(kernel_id, 1, {"old.a": b"a", "old.b": b"b"}, schema_tag="v1"))
    takeover = backend.takeover(kernel_id, [OWNER], "v2", TTL)
    assert (takeover.reason, takeover.generation, dict(takeover.fields)) == ("schema-reset", 2, {})
    assert takeover.stored_tag == hashlib.sha256(b"v1").digest()[:4].hex()
    assert raw(kernel_id) == {META_FIELD: meta(OWNER, "v1", 2), "old.a": b"a", "old.b": b"b"}, (
        "nothing deleted, the tag kept, the generation bumped"
    )
    # An instance still on the old tag (mixed-version fleet) gets a reset too and destroys nothing.
    assert backend.takeover(kernel_id, [OWNER], "v0", TTL).reason == "schema-reset"
    assert backend.flush(flush_request(kernel_id, 3, {"new.c": b"c"}, schema_tag="v2"))
    assert raw(kernel_id) == {META_FIELD: meta(OWNER, "v2", 3), "new.c": b"c"}
    restored = backend.takeover(kernel_id, [OWNER], "v2", TTL)
    assert (restored.reason, dict(restored.fields)) == ("restored", {"new.c": b"c"})


def test_a_superseded_instance_is_fenced_out(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    old = backend.takeover(kernel_id, [OWNER], "v1", TTL).generation
    assert backend.flush(flush_request(kernel_id, old, {"k": b"from A"}))
    new = backend.takeover(kernel_id, [OWNER], "v1", TTL).generation  # instance B takes the session
    assert new == old + 1
    assert backend.flush(flush_request(kernel_id, old, {"k": b"stale A"})) is False
    assert raw(kernel_id)["k"] == b"from A"  # type: ignore[index]
    assert backend.flush(flush_request(kernel_id, new, {"k": b"from B"}))
    assert raw(kernel_id)["k"] == b"from B"  # type: ignore[index]


def test_rotation_rewrites_the_stored_identity(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    old_identity, new_identity = identity("owner", b"old1"), identity("owner", b"new1")
    assert backend.flush(flush_request(kernel_id, 1, {"k": b"v"}, identity=old_identity))
    takeover = backend.takeover(kernel_id, [new_identity, old_identity], "v1", TTL)  # primary first
    assert takeover.reason == "restored"
    assert backend.flush(flush_request(kernel_id, takeover.generation, {"k": b"v2"}, identity=new_identity))
    assert raw(kernel_id)[META_FIELD] == meta(new_identity, "v1", 2)  # type: ignore[index]
    assert backend.takeover(kernel_id, [old_identity], "v1", TTL).reason == "identity-mismatch"


def test_removed_fields_are_deleted_in_the_same_write(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    assert backend.flush(flush_request(kernel_id, 1, {"a": b"1", "b": b"2", "c": b"3"}))
    assert backend.flush(flush_request(kernel_id, 1, {"b": b"22"}, removed=("a", "never-written")))
    stored = raw(kernel_id)
    assert stored is not None
    assert {name: data for name, data in stored.items() if not name.startswith("\x00")} == {
        "b": b"22",
        "c": b"3",
    }


def test_state_expires_after_its_ttl(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    assert backend.flush(flush_request(kernel_id, 1, {"k": b"v"}, ttl=0.3))
    assert backend.peek_generation(kernel_id) == 1
    time.sleep(0.6)
    assert backend.peek_generation(kernel_id) is None
    assert raw(kernel_id) is None
    assert backend.takeover(kernel_id, [OWNER], "v1", TTL).reason == "miss"


def test_takeover_and_flush_refresh_the_ttl(backend: Backend) -> None:
    kernel_id = kernel()
    ttl = 0.8
    assert backend.flush(flush_request(kernel_id, 1, {"k": b"v"}, ttl=ttl))
    time.sleep(0.5)
    generation = backend.takeover(kernel_id, [OWNER], "v1", ttl).generation
    time.sleep(0.5)  # past the first expiry: only the takeover's refresh keeps it
    assert backend.peek_generation(kernel_id) == generation
    assert backend.flush(flush_request(kernel_id, generation, {"k": b"w"}, ttl=ttl))
    time.sleep(0.5)  # past the takeover's expiry: only the flush's refresh keeps it
    assert backend.peek_generation(kernel_id) == generation


def test_touch_refreshes_the_ttl_and_reports_the_generation(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    assert backend.touch(kernel_id, TTL) is None
    assert raw(kernel_id) is None, "touching a kernel without state writes nothing"
    ttl = 0.8
    assert backend.flush(flush_request(kernel_id, 1, {"k": b"v"}, ttl=ttl))
    before = raw(kernel_id)
    time.sleep(0.5)
    assert backend.touch(kernel_id, ttl) == 1
    time.sleep(0.5)  # past the flush's expiry: only the touch keeps it
    assert raw(kernel_id) == before, "touch changes nothing but the expiry"


def test_delete_is_fenced_by_generation(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    assert backend.flush(flush_request(kernel_id, 1, {"k": b"v"}))
    assert backend.takeover(kernel_id, [OWNER], "v1", TTL).generation == 2
    assert backend.delete(kernel_id, 1) is False, (
        "a superseded instance must not delete the new owner's state"
    )
    assert raw(kernel_id) is not None
    assert backend.delete(kernel_id, 2) is True
    assert raw(kernel_id) is None
    assert backend.delete(kernel_id, 2) is False
    assert backend.flush(flush_request(kernel_id, 1, {"k": b"v"}))
    assert backend.delete(kernel_id) is True, "without a generation the delete is unconditional"
    assert backend.delete(kernel_id) is False
    assert raw(kernel_id) is None


def test_flush_many_answers_each_request_in_order(backend: Backend, raw: Raw) -> None:
    current, stale, fresh, stranger = kernel(), kernel(), kernel(), kernel()
    assert backend.flush(flush_request(current, 1, {"k": b"0"}))
    assert backend.flush(flush_request(stale, 1, {"k": b"0"}))
    backend.takeover(stale, [OWNER], "v1", TTL)  # now at generation 2
    results = backend.flush_many(
        [
            flush_request(current, 1, {"k": b"current"}),
            flush_request(stale, 1, {"k": b"stale"}),
            flush_request(fresh, 1, {"k": b"fresh"}),
            flush_request(stranger, 0, {"k": b"stranger"}),
        ]
    )
    assert results == [True, False, True, False]
    assert raw(current)["k"] == b"current"  # type: ignore[index]
    assert raw(stale)["k"] == b"0"  # type: ignore[index]
    assert raw(fresh)["k"] == b"fresh"  # type: ignore[index]
    assert raw(stranger) is None
    assert backend.flush_many([]) == []


@pytest.mark.parametrize("bad", ["", "x" * 129, "a b", "../etc", "k\n", "ké", "a:b", "a*", "a\x00"])
def test_invalid_kernel_ids_are_refused_by_every_verb(backend: Backend, bad: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: backend.takeover(bad, [OWNER], "v1", TTL),
        lambda: backend.flush(flush_request(bad, 1, {"k": b"v"})),
        lambda: backend.flush_many(
            [flush_request(kernel(), 1, {"k": b"v"}), flush_request(bad, 1, {"k": b"v"})]
        ),
        lambda: backend.peek_generation(bad),
        lambda: backend.touch(bad, TTL),
        lambda: backend.delete(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidIdentifierError, match="kernel id"):
            call()


def test_a_field_posing_as_meta_is_refused_before_anything_is_written(backend: Backend, raw: Raw) -> None:
    kernel_id = kernel()
    with pytest.raises(InvalidIdentifierError, match="NUL"):
        backend.flush(flush_request(kernel_id, 1, {"ok": b"v", META_FIELD: b"99"}))
    with pytest.raises(InvalidIdentifierError, match="NUL"):
        backend.flush_many([flush_request(kernel_id, 1, {"ok": b"v"}, removed=(META_FIELD + "g",))])
    assert raw(kernel_id) is None


@pytest.mark.parametrize("size", [0, 19, 21, 36])
def test_identities_of_the_wrong_size_are_refused(backend: Backend, raw: Raw, size: int) -> None:
    """A wrong size can never match a stored identity: refused loudly, not passed off as a mismatch."""
    kernel_id = kernel()
    wrong = OWNER.ljust(size, b"x")[:size]
    with pytest.raises(InvalidIdentifierError, match=f"{size} bytes, not 20"):
        backend.flush(flush_request(kernel_id, 1, {"k": b"v"}, identity=wrong))
    with pytest.raises(InvalidIdentifierError, match=f"{size} bytes, not 20"):
        backend.flush_many([flush_request(kernel_id, 1, {"k": b"v"}, identity=wrong)])
    assert raw(kernel_id) is None
    assert backend.flush(flush_request(kernel_id, 1, {"k": b"v"}))
    with pytest.raises(InvalidIdentifierError, match=f"{size} bytes, not 20"):
        backend.takeover(kernel_id, [OWNER, wrong], "v1", TTL)
    assert backend.peek_generation(kernel_id) == 1, "a refused takeover bumps nothing"


def test_concurrent_takeovers_hand_out_distinct_generations(backend: Backend) -> None:
    """Atomicity: racing instances never share a generation, so exactly one can write."""
    kernel_id = kernel()
    assert backend.flush(flush_request(kernel_id, 1, {"k": b"v"}))
    generations: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(20):
            generation = backend.takeover(kernel_id, [OWNER], "v1", TTL).generation
            with lock:
                generations.append(generation)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(generations) == list(range(2, 82))


# -- memory and Redis store the same bytes --------------------------------------------------------


def test_memory_stores_exactly_the_bytes_redis_stores(
    redis_url: str, redis_client: redis.Redis, prefix: str
) -> None:
    memory = MemoryBackend(Settings(backend="memory", prefix=prefix))
    shared = RedisBackend(Settings(backend="redis", url=redis_url, prefix=prefix))
    kernel_id = kernel()
    for backend in (memory, shared):
        assert backend.flush(flush_request(kernel_id, 1, {"a": b"\x00\x01", "b": b"2", "c": b"3"}))
        backend.takeover(kernel_id, [OWNER], "v2", TTL)
        assert backend.flush(flush_request(kernel_id, 2, {"d": b"4"}, schema_tag="v2", removed=("x",)))
        backend.takeover(kernel_id, [OWNER], "v2", TTL)
    stored = {name.decode(): data for name, data in redis_client.hgetall(prefix + kernel_id).items()}
    assert stored == memory.raw(kernel_id)
    assert stored == {META_FIELD: meta(OWNER, "v2", 3), "d": b"4"}
    shared.close()


# -- Redis only -----------------------------------------------------------------------------------


@pytest.fixture
def redis_backend(redis_url: str, prefix: str) -> Iterator[RedisBackend]:
    backend = RedisBackend(Settings(backend="redis", url=redis_url, prefix=prefix))
    yield backend
    backend.close()


def test_miss_leaves_no_key_in_redis(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str
) -> None:
    kernel_id = kernel()
    redis_backend.takeover(kernel_id, [OWNER], "v1", TTL)
    assert redis_client.exists(prefix + kernel_id) == 0
    assert redis_client.dbsize() == 0


def test_ttl_is_set_and_refreshed_in_milliseconds(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str
) -> None:
    kernel_id = kernel()
    key = prefix + kernel_id
    assert redis_backend.flush(flush_request(kernel_id, 1, {"k": b"v"}, ttl=100))
    assert 99_000 < redis_client.pttl(key) <= 100_000
    redis_client.pexpire(key, 5_000)
    generation = redis_backend.takeover(kernel_id, [OWNER], "v1", 100).generation
    assert redis_client.pttl(key) > 99_000, "takeover refreshes the TTL"
    redis_client.pexpire(key, 5_000)
    assert redis_backend.flush(flush_request(kernel_id, generation, {"k": b"w"}, ttl=100))
    assert redis_client.pttl(key) > 99_000, "flush refreshes the TTL"
    redis_client.pexpire(key, 5_000)
    assert redis_backend.flush(flush_request(kernel_id, generation - 1, {"k": b"x"}, ttl=100)) is False
    assert redis_client.pttl(key) <= 5_000, "a fenced-out flush does not touch the TTL"


def test_flush_many_is_one_round_trip(redis_backend: RedisBackend, redis_client: redis.Redis) -> None:
    """Counted on the server: ``total_reads_processed`` grows by one per socket read.

    A pipelined batch arrives as one write on the backend's connection, so the server reads it
    once; the same requests one by one would cost one read each. The INFO call that takes the
    second reading is itself one read, hence ``+ 1``.
    """
    redis_backend.ping()  # connect and handshake first, so only the batch is counted
    requests = [flush_request(kernel(), 1, {"k": b"v" * 20}) for _ in range(10)]
    before = redis_client.info("stats")["total_reads_processed"]
    assert redis_backend.flush_many(requests) == [True] * 10
    after = redis_client.info("stats")["total_reads_processed"]
    assert after - before == 1 + 1
    before = after
    for one in requests:
        assert redis_backend.flush(one)
    assert redis_client.info("stats")["total_reads_processed"] - before == len(requests) + 1


def test_lost_script_cache_is_reloaded(redis_backend: RedisBackend, redis_client: redis.Redis) -> None:
    """After a restart or failover the server forgets scripts; every verb must still work."""
    first, second = kernel(), kernel()
    assert redis_backend.flush(flush_request(first, 1, {"k": b"v"}))
    redis_client.script_flush()
    assert redis_backend.flush_many(
        [flush_request(first, 1, {"k": b"w"}), flush_request(second, 1, {"k": b"v"})]
    ) == [True, True]
    redis_client.script_flush()
    assert redis_backend.takeover(first, [OWNER], "v1", TTL).fields == {"k": b"w"}
    redis_client.script_flush()
    assert redis_backend.delete(first, 2)


def test_redis_error_replies_become_backend_errors(
    redis_backend: RedisBackend, redis_client: redis.Redis, prefix: str
) -> None:
    broken, fine = kernel(), kernel()
    redis_client.set(prefix + broken, b"not a hash")
    with pytest.raises(BackendError, match=r"redis takeover .* WRONGTYPE.*Fix: .*SOLARA_STATE_PREFIX"):
        redis_backend.takeover(broken, [OWNER], "v1", TTL)
    results = redis_backend.flush_many(
        [flush_request(broken, 1, {"k": b"v"}), flush_request(fine, 1, {"k": b"v"})]
    )
    assert isinstance(results[0], BackendError)
    assert "WRONGTYPE" in str(results[0])
    assert results[1] is True


def test_unreachable_server_raises_backend_error(redis_client: redis.Redis) -> None:
    closed = closed_port()  # nothing listens there
    backend = RedisBackend(
        Settings(backend="redis", url=f"redis://127.0.0.1:{closed}/0", connect_timeout=0.2)
    )
    calls: list[tuple[str, Callable[[], object]]] = [
        ("takeover", lambda: backend.takeover(kernel(), [OWNER], "v1", TTL)),
        ("flush", lambda: backend.flush(flush_request(kernel(), 1, {"k": b"v"}))),
        ("flush_many", lambda: backend.flush_many([flush_request(kernel(), 1, {"k": b"v"})])),
        ("peek_generation", lambda: backend.peek_generation(kernel())),
        ("delete", lambda: backend.delete(kernel(), 1)),
        ("ping", backend.ping),
        ("eviction_policy", backend.eviction_policy),
    ]
    for operation, call in calls:
        with pytest.raises(BackendError, match=rf"redis {operation} at .*Fix: check that Redis is running"):
            call()


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
    """An int and a short string, sealed for real, under the default prefix and a 32-hex kernel id.

    The budget holds only while the hash's listpack fits jemalloc's 128-byte size class (the key,
    its dict entry and the object header take the other 104 bytes here): every byte of the meta
    field and of each envelope's header counts.
    """
    backend = RedisBackend(Settings(backend="redis", url=redis_url))  # the default prefix: its length counts
    ring = KeyRing.from_secrets(["a-secret-for-the-memory-test"])
    kernel_id = uuid.uuid4().hex
    payloads = {"shop.page": json.dumps(3).encode(), "shop.query": json.dumps("shoes").encode()}
    fields = {
        name: seal(ring, kernel_id=kernel_id, field=name, codec=Codec.JSON, version=1, payload=payload)
        for name, payload in payloads.items()
    }
    owner = ring.identities("a-session")
    assert backend.flush(flush_request(kernel_id, 1, fields, identity=owner[0], schema_tag="default"))
    assert backend.takeover(kernel_id, owner, "default", TTL).fields == fields
    key = Settings().prefix + kernel_id
    assert redis_client.keys(f"*{kernel_id}*") == [key.encode()], "one key per kernel, nothing else"
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
    kernel_id = kernel()
    assert other.flush(flush_request(kernel_id, 1, {"k": b"v"}))
    assert direct.takeover(kernel_id, [OWNER], "v1", TTL).fields == {"k": b"v"}
    assert other.peek_generation(kernel_id) == 2
    assert other.delete(kernel_id, 2)
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


def test_passwords_never_appear_in_messages() -> None:
    assert redact("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("redis+sentinel://:s3cret@a:1,b:2/svc") == "redis+sentinel://:***@a:1,b:2/svc"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
    backend = RedisBackend(Settings(backend="redis", url=f"redis://u:s3cret@127.0.0.1:{closed_port()}/0"))
    with pytest.raises(BackendError) as failure:
        backend.ping()
    assert "s3cret" not in str(failure.value)
