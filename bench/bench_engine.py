"""solara-persisted against Solara's built-in engine (``solara.state``), in one run, on one Redis.

Run by hand, never as a test: ``.venv/bin/python bench/bench_engine.py`` (``--help`` for the knobs).
It starts its own ``redis-server`` on a free loopback port (no RDB, no AOF), drives both engines
with the same values, secret, debounce and Redis, prints one table and kills the server. Every loop
is bounded by an iteration count or a time cap.

What each measure includes (both sides do the same work):

- encode+sign: the declared type's codec to bytes, then the signed envelope. Ours:
  ``spec.type_codec.dumps`` + ``envelope.seal``; Solara: ``solara.state.encode`` (its JSON codec and
  HMAC in one call). verify+decode is the reverse: ours ``open_envelope`` + ``type_codec.loads``,
  Solara ``solara.state.decode``. Best of 5 repeats.
- full-path flush: a reactive is set inside a real Solara kernel context -> a change listener marks
  the key dirty (no I/O) -> the writer wakes after the same 1 ms debounce -> snapshot inside the
  kernel context -> encode + sign -> fenced write -> acknowledged, counted by each engine's own
  ``flush_ok`` counter over a fixed window. Solara: ``KernelStatePersistence`` attached after a
  takeover exactly as its server's connect path does, plus one ``KernelFlushWorker`` thread per
  kernel, as in production. Ours: one ``Engine`` (one writer thread for every session); the
  listener calls ``engine.mark_dirty`` and the snapshot peeks the reactive in its kernel context,
  which is what a server integration does. Same driver loop for both.
- backend flush: one fenced write of one pre-sealed envelope, back to back on one thread, no
  encoding: the bare cost of each backend's write verb (Solara ``RedisStateBackend.flush``, ours
  ``RedisBackend.flush_many`` of one request, which is what our writer calls).
- round trips: counted on the client: every ``send_packed_command`` of redis-py writes one request
  (or one pipeline) and waits for its answer before the next, so one call is one round trip.
  Commands come from the server's ``INFO commandstats`` (every ``redis.call`` inside a script counts).
- restore: ours ``engine.restore`` (identities, takeover, verify, decode, counters); Solara: what its
  connect path does before ``attach``: ``session_hmacs`` + ``backend.takeover`` + ``decode`` of every
  envelope. Warm is the median of many calls in this process. Cold is the first call in a fresh
  process (imports done, engine/backend started and connected), median over a few processes, once
  with Redis still holding both engines' Lua scripts (a fleet's normal state) and once after
  ``SCRIPT FLUSH`` (Redis restarted: both must load their scripts).
- memory: ``MEMORY USAGE key SAMPLES 0`` of the one hash each engine writes for a session holding a
  page number and a short query, both written through the full path above. Solara's envelope adds
  57 bytes to the JSON payload, so any value whose JSON is over 7 bytes (a str of 6+ characters)
  exceeds Redis's 64-byte listpack value limit and turns the whole hash into a hashtable; the bench
  shows one session below and one above that edge.

The ``solara.state`` logger is set to WARNING so neither engine pays for per-flush log output.
Solara's default Redis client pool (100 connections) raises "Too many connections" beyond 100
flushing kernels, so the bench hands it a larger pool through its ``client=`` seam.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import redis
import redis.connection
from rich.console import Console
from rich.markup import escape
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REDIS_SERVER = "/usr/bin/redis-server"
SECRET = "bench-" + "k" * 40  # the same secret for both engines; a throwaway value
SCHEMA_TAG = "bench"
OURS_PREFIX = "bench:ours:"
SOLARA_PREFIX = "bench:solara:"
FLUSH_DEBOUNCE = 0.001
TTL = 86400.0
RESTORE_KEYS = 20
CODEC_KERNEL = "kernel-codec"
#: The two memory sessions: the query's JSON is 7 bytes (Solara's envelope just fits 64) and 11.
MEMORY_QUERIES = ("shoes", "red shoes")

# -- values -------------------------------------------------------------------------------------


def value_small() -> str:
    return "the quick brown fox jumps over the lazy dog; ok!"  # 50 bytes of JSON


def value_medium() -> dict[str, int]:
    return {f"counter-{i:03d}": i * 7919 for i in range(60)}  # ~1 KB of JSON


def value_large() -> list[dict[str, int | str]]:
    return [  # ~93 KB of JSON: a table of records
        {
            "id": i,
            "name": f"item-{i:05d}",
            "sku": f"SKU-{i * 31 % 99991:05d}",
            "qty": i % 17,
            "cents": i * 113,
        }
        for i in range(1300)
    ]


CODEC_CASES: tuple[tuple[str, str, Any, Callable[[], Any], int], ...] = (
    # label, key, declared type, value factory, calls per timing repeat
    ("50 B str", "bench.codec.small", str, value_small, 5000),
    ("1 KB dict[str, int]", "bench.codec.medium", dict[str, int], value_medium, 1000),
    ("100 KB list[dict]", "bench.codec.large", list[dict[str, int | str]], value_large, 10),
)

RESTORE_TYPES: tuple[tuple[Any, Any], ...] = (
    (int, 42),
    (str, "shoes"),
    (bool, True),
    (float, 2.5),
    (list[int], [1, 2, 3, 5, 8, 13]),
    (dict[str, int], {"a": 1, "b": 2, "c": 3}),
    (str, "a somewhat longer search query with words"),
    (list[str], ["red", "green", "blue"]),
    (int, 7),
    (dict[str, str], {"sort": "price", "dir": "asc"}),
)


def restore_values() -> dict[str, tuple[Any, Any]]:
    """Twenty small values of mixed types, ``key -> (type, value)``."""
    return {f"bench.restore.k{i:02d}": RESTORE_TYPES[i % len(RESTORE_TYPES)] for i in range(RESTORE_KEYS)}


# -- redis-server and round-trip counting ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A throwaway redis-server on loopback: no RDB, no AOF, killed on exit whatever happens."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*command, "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        process.kill()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


class RoundTrips:
    """Counts requests redis-py writes to sockets; one send is one request/answer round trip."""

    def __init__(self) -> None:
        self.count = 0
        lock = threading.Lock()
        original = redis.connection.AbstractConnection.send_packed_command

        def send_packed_command(conn: Any, command: Any, check_health: bool = True) -> None:
            if not getattr(conn, "bench_uncounted", False):
                with lock:
                    self.count += 1
            original(conn, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]


class AdminConnection(redis.connection.Connection):
    """The bench's own INFO / MEMORY / SCRIPT calls, left out of the round-trip count."""

    bench_uncounted = True


def admin_client(port: int) -> redis.Redis:
    pool = redis.ConnectionPool(host="127.0.0.1", port=port, connection_class=AdminConnection)
    return redis.Redis(connection_pool=pool)


def server_commands(admin: redis.Redis) -> int:
    """Commands the server has run, scripts' inner calls included, INFO itself excluded."""
    stats = admin.info("commandstats")
    return sum(entry["calls"] for name, entry in stats.items() if name != "cmdstat_info")


# -- set-up of both engines ---------------------------------------------------------------------


def configure_solara(port: int) -> None:
    """Solara's engine reads its settings object at call time; point it at the bench Redis."""
    import solara.server.settings as server_settings

    state = server_settings.state
    state.backend = "redis"
    state.url = f"redis://127.0.0.1:{port}/0"
    state.secret_keys = SECRET
    state.prefix = SOLARA_PREFIX
    state.schema_tag = SCHEMA_TAG
    state.ttl = "24h"


def solara_backend(port: int, sessions: int) -> Any:
    from solara.state.redis import RedisStateBackend

    client = redis.Redis(
        host="127.0.0.1", port=port, max_connections=sessions + 16, socket_timeout=1, socket_connect_timeout=1
    )
    return RedisStateBackend(client=client)


def ours_settings(port: int) -> Any:
    from solara_persisted.config import Settings

    return Settings(
        backend="redis",
        url=f"redis://127.0.0.1:{port}/0",
        secret_keys=(SECRET,),
        prefix=OURS_PREFIX,
        schema_tag=SCHEMA_TAG,
        flush_debounce=FLUSH_DEBOUNCE,
        connect_timeout=1.0,
        ttl=TTL,
        session_http_only=True,
    )


def ours_engine(port: int) -> Any:
    from solara_persisted.engine import Engine

    engine = Engine(ours_settings(port))
    engine.start()
    return engine


class Declarations:
    """Both engines' declarations of the same keys, made once per process."""

    def __init__(self) -> None:
        import solara
        import solara.server.starlette  # reactives are per kernel only once a server module is loaded
        from solara.state import PersistConfig

        from solara_persisted.spec import persisted, registry

        self.registry = registry
        for _, key, tp, factory, _ in CODEC_CASES:
            declare(persisted, key, tp, factory())
        self.restore = restore_values()
        for key, (tp, value) in self.restore.items():
            declare(persisted, key, tp, value)
        self.restore_expected = {key: value for key, (_, value) in self.restore.items()}
        # The session of the flush and memory measures: a page number and a short search query.
        self.ours_page = declare(persisted, "bench.page", int, 0)
        self.ours_query = declare(persisted, "bench.query", str, "")
        self.solara_page = solara.reactive(0, persist=PersistConfig(key="bench.page"))
        self.solara_query = solara.reactive("", persist=PersistConfig(key="bench.query"))


def declare(persisted: Any, key: str, tp: Any, default: Any) -> Any:
    """``@persisted(key=...)`` over a default factory annotated with ``tp``, built at run time."""

    def factory() -> Any:
        return default

    factory.__annotations__ = {"return": tp}
    factory.__name__ = factory.__qualname__ = key.replace(".", "_")
    return persisted(key=key)(factory)


def new_context(kernel_id: str, session_id: str) -> Any:
    from solara.server import kernel, kernel_context

    return kernel_context.VirtualKernelContext(id=kernel_id, session_id=session_id, kernel=kernel.Kernel())


class SolaraSession:
    """What Solara's server does on connect: takeover, attach, start the kernel's flush worker."""

    def __init__(self, backend: Any, context: Any) -> None:
        import solara.state as S

        tag = S.effective_schema_tag()
        result = backend.takeover(context.id, S.session_hmacs(context.session_id), tag)
        manager = S.attach(
            context,
            backend,
            session_hmac=S.session_hmac(context.session_id),
            schema_tag=tag,
            generation=result.generation,
            envelopes=result.fields,
            restore_reason=result.reason,
        )
        self.worker = S.KernelFlushWorker(
            manager,
            breaker=S.get_breaker(),
            has_connected_page=lambda: True,
            on_superseded=lambda: None,
            debounce=FLUSH_DEBOUNCE,
        )
        self.worker.start()


class OursSession:
    """What a server integration does with our engine: restore, open, listen, snapshot on demand."""

    def __init__(self, engine: Any, context: Any, reactives: Mapping[str, Any]) -> None:
        self.context = context
        self.reactives = reactives
        restored = engine.restore(context.id, context.session_id)
        self.session = engine.open_session(context.id, context.session_id, restored, self.snapshot)
        with context:
            for key, reactive in reactives.items():
                reactive.subscribe_change(lambda new, old, key=key: engine.mark_dirty(self.session, key))

    def snapshot(self, keys: Any) -> dict[str, Any]:
        with self.context:
            return {key: self.reactives[key].peek() for key in keys if key in self.reactives}


# -- 1. encode+sign, verify+decode --------------------------------------------------------------


def best_us(stmt: Callable[[], Any], number: int, repeat: int = 5) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e6


def bench_codec(decl: Declarations) -> list[dict[str, Any]]:
    import solara.state as S

    from solara_persisted.envelope import KeyRing, open_envelope, seal

    ring = KeyRing.from_secrets([SECRET])
    rows = []
    for label, key, _, factory, number in CODEC_CASES:
        value = factory()
        spec = decl.registry.resolve(key)
        codec = spec.type_codec
        field = "reactive:" + key  # Solara's field name for the key

        def ours_encode(value: Any = value, spec: Any = spec, codec: Any = codec, key: str = key) -> bytes:
            payload = codec.dumps(value)
            return seal(
                ring,
                kernel_id=CODEC_KERNEL,
                field=key,
                codec=spec.codec_id,
                version=spec.version,
                payload=payload,
            )

        def solara_encode(value: Any = value, field: str = field) -> bytes:
            return S.encode(value, kernel_id=CODEC_KERNEL, field_name=field)

        ours_blob, solara_blob = ours_encode(), solara_encode()

        def ours_decode(blob: bytes = ours_blob, codec: Any = codec, key: str = key) -> Any:
            return codec.loads(open_envelope(ring, blob, kernel_id=CODEC_KERNEL, field=key).payload)

        def solara_decode(blob: bytes = solara_blob, field: str = field) -> Any:
            return S.decode(blob, kernel_id=CODEC_KERNEL, field_name=field)

        if ours_decode() != value or solara_decode() != value:
            raise AssertionError(f"{label}: a round trip changed the value, so the comparison is meaningless")
        rows.append(
            {
                "label": label,
                "json_bytes": len(codec.dumps(value)),
                "ours_encode": best_us(ours_encode, number),
                "solara_encode": best_us(solara_encode, number),
                "ours_decode": best_us(ours_decode, number),
                "solara_decode": best_us(solara_decode, number),
                "ours_bytes": len(ours_blob),
                "solara_bytes": len(solara_blob),
            }
        )
    return rows


# -- 2. flushes -----------------------------------------------------------------------------------


def drive(contexts: list[Any], reactive: Any, seconds: float) -> int:
    """Set the reactive in every context round-robin for ``seconds``; returns how many changes."""
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for context in contexts:
            with context:
                reactive.value = n
            n += 1
        time.sleep(0.0005)  # a user-paced pause per pass; it also lets the writers run
    return n


def measure_window(
    contexts: list[Any],
    reactive: Any,
    seconds: float,
    acked: Callable[[], int],
    trips: RoundTrips,
    admin: redis.Redis,
) -> dict[str, float]:
    drive(contexts, reactive, min(0.5, seconds))  # warm-up: connections, scripts, first flushes
    time.sleep(0.1)
    ok0, rt0, cmd0 = acked(), trips.count, server_commands(admin)
    start = time.perf_counter()
    changes = drive(contexts, reactive, seconds)
    elapsed = time.perf_counter() - start
    in_window = acked() - ok0
    time.sleep(0.2)  # let the last flushes land, so every counted request has its acknowledgement
    ok, rt, cmd = acked() - ok0, trips.count - rt0, server_commands(admin) - cmd0
    return {
        "flushes_per_s": in_window / elapsed,
        "changes": changes,
        "flushes": in_window,
        "trips_per_flush": rt / ok if ok else float("nan"),
        "commands_per_flush": cmd / ok if ok else float("nan"),
    }


def bench_solara_full_path(
    port: int,
    decl: Declarations,
    sessions: int,
    seconds: float,
    trips: RoundTrips,
    admin: redis.Redis,
    tag: str,
) -> dict[str, float]:
    import solara.state as S

    backend = solara_backend(port, sessions)
    contexts, workers = [], []
    try:
        for i in range(sessions):
            context = new_context(f"solara-{tag}-{i}", f"solara-{tag}-session-{i}")
            workers.append(SolaraSession(backend, context).worker)
            contexts.append(context)
        return measure_window(contexts, decl.solara_page, seconds, lambda: S.stats().flush_ok, trips, admin)
    finally:
        for worker in workers:
            worker.close(timeout=1.0)
        backend.client.close()


def bench_ours_full_path(
    port: int,
    decl: Declarations,
    sessions: int,
    seconds: float,
    trips: RoundTrips,
    admin: redis.Redis,
    tag: str,
) -> dict[str, float]:
    engine = ours_engine(port)
    try:
        contexts = []
        for i in range(sessions):
            context = new_context(f"ours-{tag}-{i}", f"ours-{tag}-session-{i}")
            OursSession(engine, context, {"bench.page": decl.ours_page})
            contexts.append(context)
        return measure_window(contexts, decl.ours_page, seconds, lambda: flush_ok(engine), trips, admin)
    finally:
        engine.drain(2.0)
        engine.backend.close()


def flush_ok(engine: Any) -> int:
    return int(engine.stats.block(enabled=True, breaker_state="closed")["flush_ok"])


def bench_backend_flush(
    port: int, trips: RoundTrips, admin: redis.Redis, calls: int
) -> dict[str, dict[str, float]]:
    """Each backend's fenced write of one pre-sealed envelope, back to back on one thread."""
    import solara.state as S

    from solara_persisted.backends import FlushRequest, create_backend
    from solara_persisted.envelope import Codec, KeyRing, seal

    results: dict[str, dict[str, float]] = {}

    solara = solara_backend(port, 1)
    tag = S.effective_schema_tag()
    shmac = S.session_hmac("solara-direct-session")
    generation = solara.takeover("solara-direct", [shmac], tag).generation
    blob = S.encode(3, kernel_id="solara-direct", field_name="reactive:bench.page")

    def solara_flush() -> None:
        if not solara.flush("solara-direct", generation, {"reactive:bench.page": blob}, TTL, shmac, tag):
            raise AssertionError("Solara's fenced flush was rejected")

    results["solara"] = timed_calls(solara_flush, calls, trips, admin)
    solara.client.close()

    settings = ours_settings(port)
    ring = KeyRing.from_secrets(settings.secret_keys)
    ours = create_backend(settings)
    identities = ring.identities("ours-direct-session")
    takeover = ours.takeover("ours-direct", identities, SCHEMA_TAG, TTL)
    envelope = seal(
        ring, kernel_id="ours-direct", field="bench.page", codec=Codec.JSON, version=1, payload=b"3"
    )
    request = FlushRequest(
        kernel_id="ours-direct",
        generation=takeover.generation,
        identity=identities[0],
        schema_tag=SCHEMA_TAG,
        fields={"bench.page": envelope},
        ttl=TTL,
    )

    def ours_flush() -> None:
        if ours.flush_many([request]) != [True]:
            raise AssertionError("our fenced flush was rejected")

    results["ours"] = timed_calls(ours_flush, calls, trips, admin)
    ours.close()
    return results


def timed_calls(
    call: Callable[[], None], calls: int, trips: RoundTrips, admin: redis.Redis
) -> dict[str, float]:
    for _ in range(50):
        call()  # connection open, script cached
    rt0, cmd0 = trips.count, server_commands(admin)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    elapsed = time.perf_counter() - start
    return {
        "per_s": calls / elapsed,
        "trips_per_flush": (trips.count - rt0) / calls,
        "commands_per_flush": (server_commands(admin) - cmd0) / calls,
    }


# -- 3. restore -----------------------------------------------------------------------------------


def seed_restore_data(port: int, decl: Declarations) -> None:
    """Write the 20-key session through each engine's own write path."""
    import solara.state as S

    backend = solara_backend(port, 1)
    tag = S.effective_schema_tag()
    shmac = S.session_hmac("solara-restore-session")
    result = backend.takeover("solara-restore", [shmac], tag)
    fields = {
        "reactive:" + key: S.encode(value, kernel_id="solara-restore", field_name="reactive:" + key)
        for key, value in decl.restore_expected.items()
    }
    if not backend.flush("solara-restore", result.generation, fields, TTL, shmac, tag):
        raise AssertionError("Solara's seed write was rejected")
    backend.client.close()

    engine = ours_engine(port)
    values = decl.restore_expected
    restored = engine.restore("ours-restore", "ours-restore-session")
    session = engine.open_session(
        "ours-restore", "ours-restore-session", restored, lambda keys: {key: values[key] for key in keys}
    )
    for key in values:
        engine.mark_dirty(session, key)
    if engine.drain(5.0):
        raise AssertionError("our seed write did not complete")
    engine.backend.close()


def ours_restore_once(engine: Any, expected: Mapping[str, Any]) -> None:
    restored = engine.restore("ours-restore", "ours-restore-session")
    if restored.result != "success" or restored.values != expected:
        raise AssertionError(f"our restore returned {restored.result} with {len(restored.values)} values")


def solara_restore_once(backend: Any, expected: Mapping[str, Any]) -> None:
    import solara.state as S

    result = backend.takeover(
        "solara-restore", S.session_hmacs("solara-restore-session"), S.effective_schema_tag()
    )
    values = {
        field[len("reactive:") :]: S.decode(blob, kernel_id="solara-restore", field_name=field)
        for field, blob in result.fields.items()
    }
    if result.reason != "restored" or values != expected:
        raise AssertionError(f"Solara's restore returned {result.reason} with {len(values)} values")


def bench_restore_warm(port: int, decl: Declarations, runs: int) -> dict[str, float]:
    engine = ours_engine(port)
    backend = solara_backend(port, 1)
    calls = {
        "ours": lambda: ours_restore_once(engine, decl.restore_expected),
        "solara": lambda: solara_restore_once(backend, decl.restore_expected),
    }
    samples: dict[str, list[float]] = {side: [] for side in calls}
    for _ in range(20):
        for call in calls.values():
            call()
    for _ in range(runs):  # interleaved, so a noisy neighbour hits both sides alike
        for side, call in calls.items():
            start = time.perf_counter()
            call()
            samples[side].append(time.perf_counter() - start)
    backend.client.close()
    engine.backend.close()
    return {side: statistics.median(values) * 1e3 for side, values in samples.items()}


def bench_restore_cold(port: int, processes: int, flush_scripts: bool) -> dict[str, float]:
    """The first restore in a fresh process for each side, median over ``processes`` processes."""
    admin = admin_client(port)
    samples: dict[str, list[float]] = {"ours": [], "solara": []}
    for _ in range(processes):
        for side in samples:
            if flush_scripts:
                admin.script_flush()
            completed = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--cold-restore", side, "--port", str(port)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if completed.returncode != 0:
                raise RuntimeError(f"cold restore child ({side}) failed:\n{completed.stderr[-3000:]}")
            samples[side].append(json.loads(completed.stdout.strip().splitlines()[-1])["ms"])
    admin.close()
    return {side: statistics.median(values) for side, values in samples.items()}


def cold_restore_child(side: str, port: int) -> None:
    configure_solara(port)
    decl = Declarations()
    if side == "ours":
        engine = ours_engine(port)  # start() connects (it reads maxmemory-policy)
        start = time.perf_counter()
        ours_restore_once(engine, decl.restore_expected)
    else:
        backend = solara_backend(port, 1)  # its constructor connects (CONFIG GET maxmemory-policy)
        start = time.perf_counter()
        solara_restore_once(backend, decl.restore_expected)
    print(json.dumps({"ms": (time.perf_counter() - start) * 1e3}))


# -- 4. memory -----------------------------------------------------------------------------------


def bench_memory(port: int, decl: Declarations, admin: redis.Redis, query: str) -> dict[str, Any]:
    """One session per engine holding page=3 and ``query``, written by each engine's full path."""
    tag = query.replace(" ", "-")
    backend = solara_backend(port, 1)
    context = new_context(f"solara-memory-{tag}", f"solara-memory-session-{tag}")
    worker = SolaraSession(backend, context).worker
    with context:
        decl.solara_page.value = 3
        decl.solara_query.value = query
    worker.close(timeout=2.0)  # its final flush: whatever the debounce had not written yet
    backend.client.close()

    engine = ours_engine(port)
    context = new_context(f"ours-memory-{tag}", f"ours-memory-session-{tag}")
    OursSession(engine, context, {"bench.page": decl.ours_page, "bench.query": decl.ours_query})
    with context:
        decl.ours_page.value = 3
        decl.ours_query.value = query
    if engine.drain(2.0):
        raise AssertionError("our memory-session write did not complete")
    engine.backend.close()

    out: dict[str, Any] = {}
    for side, key, fields in (
        ("ours", f"{OURS_PREFIX}ours-memory-{tag}", ("bench.page", "bench.query")),
        ("solara", f"{SOLARA_PREFIX}solara-memory-{tag}", ("reactive:bench.page", "reactive:bench.query")),
    ):
        stored = admin.hgetall(key)
        missing = [field for field in fields if field.encode() not in stored]
        if missing:
            raise AssertionError(f"{side}: the session hash {key!r} lacks {missing}")
        out[side] = admin.memory_usage(key, samples=0)
        out[side + "_encoding"] = admin.object("encoding", key).decode()
    return out


# -- report -----------------------------------------------------------------------------------


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("nan")


def report(results: dict[str, Any], args: argparse.Namespace) -> Table:
    table = Table(
        title=f"solara-persisted vs Solara {results['solara_version']}'s built-in engine, "
        f"redis-server {results['redis_version']} on loopback"
    )
    for column in ("measure", "ours", "Solara", "ratio", "goal", "met?"):
        table.add_column(column, justify="left" if column in ("measure", "goal") else "right")

    def row(
        measure: str, ours: float, theirs: float, fmt: str, goal: str = "", met: bool | None = None
    ) -> None:
        mark = "" if met is None else ("[green]yes[/]" if met else "[red]NO[/]")
        table.add_row(
            escape(measure), format(ours, fmt), format(theirs, fmt), f"{ratio(ours, theirs):.2f}×", goal, mark
        )

    for r in results["codec"]:
        q = ratio(r["ours_encode"], r["solara_encode"])
        row(f"encode+sign {r['label']} (µs)", r["ours_encode"], r["solara_encode"], ".2f", "≤ 0.5×", q <= 0.5)
    for r in results["codec"]:
        row(f"verify+decode {r['label']} (µs)", r["ours_decode"], r["solara_decode"], ".2f")
    small = results["codec"][0]
    row(f"envelope bytes, {small['label']}", small["ours_bytes"], small["solara_bytes"], ".0f")
    table.add_section()
    many, one = results["full"]["many"], results["full"]["one"]
    q = ratio(many["ours"]["flushes_per_s"], many["solara"]["flushes_per_s"])
    row(
        f"full-path flushes/s, {args.sessions} sessions",
        many["ours"]["flushes_per_s"],
        many["solara"]["flushes_per_s"],
        ",.0f",
        "≥ 2×",
        q >= 2,
    )
    row(
        "full-path flushes/s, 1 session", one["ours"]["flushes_per_s"], one["solara"]["flushes_per_s"], ",.0f"
    )
    direct = results["direct"]
    row("backend flush calls/s, 1 thread", direct["ours"]["per_s"], direct["solara"]["per_s"], ",.0f")
    trips = (one["ours"]["trips_per_flush"], direct["ours"]["trips_per_flush"])
    row(
        "round trips per flush, 1 session",
        one["ours"]["trips_per_flush"],
        one["solara"]["trips_per_flush"],
        ".3f",
        "= 1",
        all(t == 1 for t in trips),
    )
    row(
        f"round trips per flush, {args.sessions} sessions",
        many["ours"]["trips_per_flush"],
        many["solara"]["trips_per_flush"],
        ".3f",
    )
    row(
        "server commands per flush",
        direct["ours"]["commands_per_flush"],
        direct["solara"]["commands_per_flush"],
        ".1f",
    )
    table.add_section()
    restore = results["restore"]
    for label, key in (
        ("warm, median", "warm"),
        ("cold: new process", "cold"),
        ("cold: new process, empty script cache", "cold_flushed"),
    ):
        q = ratio(restore[key]["ours"], restore[key]["solara"])
        row(
            f"restore {RESTORE_KEYS} keys, {label} (ms)",
            restore[key]["ours"],
            restore[key]["solara"],
            ".3f",
            "≤ 0.5×",
            q <= 0.5,
        )
    table.add_section()
    for query, memory in zip(MEMORY_QUERIES, results["memory"], strict=True):
        q = ratio(memory["ours"], memory["solara"])
        row(
            f"Redis bytes/session {{page: 3, query: {query!r}}} ({memory['ours_encoding']} / {memory['solara_encoding']})",
            memory["ours"],
            memory["solara"],
            ",.0f",
            "≤ 0.6×",
            q <= 0.6,
        )
    return table


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    trips = RoundTrips()
    with redis_server() as port:
        configure_solara(port)
        import solara

        admin = admin_client(port)
        results: dict[str, Any] = {
            "solara_version": solara.__version__,
            "redis_version": admin.info("server")["redis_version"],
        }
        with console.status("declaring both engines' keys"):
            decl = Declarations()
        with console.status("encode+sign / verify+decode"):
            results["codec"] = bench_codec(decl)
        with console.status("backend flush, one thread"):
            results["direct"] = bench_backend_flush(port, trips, admin, args.flush_calls)
        results["full"] = {}
        for label, sessions in (("many", args.sessions), ("one", 1)):
            results["full"][label] = {}
            for side, bench in (("solara", bench_solara_full_path), ("ours", bench_ours_full_path)):
                with console.status(f"full-path flushes, {side}, {sessions} session(s)"):
                    results["full"][label][side] = bench(
                        port, decl, sessions, args.seconds, trips, admin, label
                    )
        with console.status(f"restore of a {RESTORE_KEYS}-key session"):
            seed_restore_data(port, decl)
            results["restore"] = {
                "warm": bench_restore_warm(port, decl, args.restore_runs),
                "cold": bench_restore_cold(port, args.cold_processes, flush_scripts=False),
                "cold_flushed": bench_restore_cold(port, args.cold_processes, flush_scripts=True),
            }
        with console.status("Redis memory per session"):
            results["memory"] = [bench_memory(port, decl, admin, query) for query in MEMORY_QUERIES]
        admin.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="sessions changing a value (default 200)")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="length of each full-path window (default 3)"
    )
    parser.add_argument(
        "--flush-calls", type=int, default=3000, help="backend flush calls per side (default 3000)"
    )
    parser.add_argument("--restore-runs", type=int, default=300, help="warm restores per side (default 300)")
    parser.add_argument(
        "--cold-processes", type=int, default=5, help="fresh processes per cold sample (default 5)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this file")
    parser.add_argument("--cold-restore", choices=("ours", "solara"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("solara.state").setLevel(logging.WARNING)
    if args.cold_restore:
        cold_restore_child(args.cold_restore, args.port)
        return
    console = Console() if sys.stdout.isatty() else Console(width=130)
    results = run(args, console)
    console.print(report(results, args))
    for label in ("many", "one"):
        for side in ("solara", "ours"):
            full = results["full"][label][side]
            console.print(
                f"{side:>6}, {label} session(s): {full['changes']:,} value changes -> {full['flushes']:,} "
                f"acknowledged flushes, {full['commands_per_flush']:.1f} server commands per flush"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
