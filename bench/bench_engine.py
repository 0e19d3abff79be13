"""solara-persisted against Solara's built-in engine (``solara.state``), in one run, on one Redis.

Run by hand, never as a test: ``.venv/bin/python bench/bench_engine.py``. It starts its own
``redis-server`` on a free loopback port (no persistence), drives both engines through their
public or real internal paths with the same values, secret and Redis, prints one table and stops
the server. Every loop is bounded by an iteration count or a time cap.

What each measure includes (both sides do the same work):

- encode+sign: the declared type's codec to bytes, then the signed envelope. Ours:
  ``spec.type_codec.dumps`` + ``envelope.seal``; Solara: ``solara.state.encode`` (its JSON codec
  and HMAC in one call). verify+decode is the reverse: ours ``open_envelope`` +
  ``type_codec.loads``, Solara ``solara.state.decode``.
- full-path flush: a reactive value is set inside a real Solara kernel context -> a change listener
  marks the key dirty -> the engine's writer wakes after the debounce -> snapshot inside the kernel
  context -> encode + sign -> fenced write to Redis -> acknowledged (counted by each engine's own
  ``flush_ok`` counter). Solara: its ``KernelStatePersistence`` (attached as its server does)
  and one ``KernelFlushWorker`` thread per kernel, as it runs in production. Ours: one
  ``Engine``; the listener calls ``engine.mark_dirty`` and the snapshot peeks the same kind of
  reactive, which is what the server integration does. Same debounce, sessions and driver loop.
- backend flush: one fenced write of one pre-sealed envelope, single-threaded, no encoding:
  the bare cost of each backend's write verb.
- round trips: counted on the client (every ``send_packed_command`` of redis-py is one request
  written to the socket and answered before the next: one round trip); commands come from the
  server's ``INFO commandstats`` (inside a script every ``redis.call`` counts too).
- restore: ours ``engine.restore`` (identities, takeover, verify, decode, stats); Solara: its
  connect path's ``session_hmacs`` + ``backend.takeover`` + ``decode`` of every envelope. Cold is
  the first call in a fresh process (imports done, engine started, Lua scripts flushed from Redis
  so both load theirs); warm is the median of many calls.
- memory: ``MEMORY USAGE`` of the one hash each engine writes for a session holding an int and a
  short str, both written through the real full path above.

The ``solara.state`` logger is set to WARNING so neither engine pays for per-flush log output.
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
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REDIS_SERVER = "/usr/bin/redis-server"
SECRET = "bench-" + "k" * 40  # same secret for both engines; never a production value
SCHEMA_TAG = "bench"
OURS_PREFIX = "bench:ours:"
SOLARA_PREFIX = "bench:solara:"
FLUSH_DEBOUNCE = 0.001
RESTORE_KEYS = 20
CODEC_KERNEL = "kernel-codec"

# -- values -------------------------------------------------------------------------------------


def value_small() -> str:
    return "the quick brown fox jumps over the lazy dog; ok!"  # 50 bytes of JSON with quotes


def value_medium() -> dict[str, int]:
    return {f"counter-{i:03d}": i * 7919 for i in range(60)}  # ~1 KB


def value_large() -> list[dict[str, int | str]]:
    return [  # ~100 KB: a table of records
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
    # label, key, declared type, value factory, iterations per timing repeat
    ("50 B", "bench.codec.small", str, value_small, 5000),
    ("1 KB", "bench.codec.medium", dict[str, int], value_medium, 1000),
    ("100 KB", "bench.codec.large", list[dict[str, int | str]], value_large, 10),
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
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
    """Counts requests redis-py writes to sockets (one send = one request/answer round trip)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        original = redis.connection.AbstractConnection.send_packed_command
        counter = self

        def send_packed_command(conn: Any, command: Any, check_health: bool = True) -> None:
            if not getattr(conn, "bench_uncounted", False):
                with counter._lock:
                    counter.count += 1
            original(conn, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]


class AdminConnection(redis.connection.Connection):
    """The bench's own INFO / MEMORY calls, left out of the round-trip count."""

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
    """Solara's Redis backend; its default client pool (100) errors beyond 100 busy kernels, so the
    bench hands it a pool as large as the session count through its documented ``client=`` seam."""
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
        session_http_only=True,
    )


class Declarations:
    """Both engines' declarations of the same keys, made once per process."""

    def __init__(self) -> None:
        import solara
        import solara.server.starlette
        from solara.state import PersistConfig
        from solara_persisted.spec import persisted, registry

        self.registry = registry
        self.codec_specs: dict[str, Any] = {}
        for _, key, tp, factory, _ in CODEC_CASES:
            self.codec_specs[key] = declare(persisted, key, tp, factory())
        self.restore = restore_values()
        for key, (tp, value) in self.restore.items():
            declare(persisted, key, tp, value)
        # The session of the flush and memory measures: a page number and a short search query.
        self.ours_page = declare(persisted, "bench.page", int, 0)
        self.ours_query = declare(persisted, "bench.query", str, "")
        self.solara_page = solara.reactive(0, persist=PersistConfig(key="bench.page"))
        self.solara_query = solara.reactive("", persist=PersistConfig(key="bench.query"))

    def spec(self, key: str) -> Any:
        return self.registry.resolve(key)


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
        spec = decl.spec(key)
        codec = spec.type_codec
        field = "reactive:" + key

        def ours_encode(value: Any = value, spec: Any = spec, codec: Any = codec, key: str = key) -> bytes:
            return seal(
                ring,
                kernel_id=CODEC_KERNEL,
                field=key,
                codec=spec.codec_id,
                version=spec.version,
                payload=codec.dumps(value),
            )

        def solara_encode(value: Any = value, field: str = field) -> bytes:
            return S.encode(value, kernel_id=CODEC_KERNEL, field_name=field)

        ours_blob, solara_blob = ours_encode(), solara_encode()

        def ours_decode(blob: bytes = ours_blob, codec: Any = codec, key: str = key) -> Any:
            return codec.loads(open_envelope(ring, blob, kernel_id=CODEC_KERNEL, field=key).payload)

        def solara_decode(blob: bytes = solara_blob, field: str = field) -> Any:
            return S.decode(blob, kernel_id=CODEC_KERNEL, field_name=field)

        if ours_decode() != value or solara_decode() != value:
            raise AssertionError(
                f"{label}: a round trip changed the value; the comparison would be meaningless"
            )
        rows.append(
            {
                "label": label,
                "size": len(codec.dumps(value)),
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
        time.sleep(0.0005)  # let writers run even when the GIL scheduler favours this loop
    return n


def measure_window(
    contexts: list[Any],
    reactive: Any,
    seconds: float,
    acked: Callable[[], int],
    trips: RoundTrips,
    admin: redis.Redis,
) -> dict[str, float]:
    ok0, rt0, cmd0 = acked(), trips.count, server_commands(admin)
    start = time.perf_counter()
    changes = drive(contexts, reactive, seconds)
    elapsed = time.perf_counter() - start
    ok, rt, cmd = acked() - ok0, trips.count - rt0, server_commands(admin) - cmd0
    return {
        "flushes_per_s": ok / elapsed,
        "changes": changes,
        "flushes": ok,
        "trips_per_flush": rt / ok if ok else float("nan"),
        "commands_per_flush": cmd / ok if ok else float("nan"),
    }


def bench_solara_full_path(
    port: int, decl: Declarations, sessions: int, seconds: float, trips: RoundTrips, admin: redis.Redis
) -> dict[str, float]:
    import solara.state as S

    backend = solara_backend(port, sessions)
    tag = S.effective_schema_tag()
    contexts, workers = [], []
    try:
        for i in range(sessions):
            session_id = f"solara-session-{i}"
            context = new_context(f"solara-flush-{i}", session_id)
            # its server's connect path: takeover, attach (decode + watch), one worker per kernel
            result = backend.takeover(context.id, S.session_hmacs(session_id), tag)
            manager = S.attach(
                context,
                backend,
                session_hmac=S.session_hmac(session_id),
                schema_tag=tag,
                generation=result.generation,
                envelopes=result.fields,
                restore_reason=result.reason,
            )
            worker = S.KernelFlushWorker(
                manager,
                breaker=S.get_breaker(),
                has_connected_page=lambda: True,
                on_superseded=lambda: None,
                debounce=FLUSH_DEBOUNCE,
            )
            worker.start()
            contexts.append(context)
            workers.append(worker)
        drive(contexts, decl.solara_page, 0.3)  # warm-up: connections, scripts, first flushes
        time.sleep(0.1)
        return measure_window(contexts, decl.solara_page, seconds, lambda: S.stats().flush_ok, trips, admin)
    finally:
        for worker in workers:
            worker.close(timeout=1.0)
        backend.client.close()


class OursSession:
    """What the server integration does per kernel: listen on the reactives, snapshot on demand."""

    def __init__(self, engine: Any, context: Any, session_id: str, reactives: Mapping[str, Any]) -> None:
        self.context = context
        self.reactives = reactives
        restored = engine.restore(context.id, session_id)
        self.session = engine.open_session(context.id, session_id, restored, self.snapshot)
        with context:
            for key, reactive in reactives.items():
                reactive.subscribe_change(lambda new, old, key=key: engine.mark_dirty(self.session, key))

    def snapshot(self, keys: Any) -> dict[str, Any]:
        with self.context:
            return {key: self.reactives[key].peek() for key in keys if key in self.reactives}


def ours_engine(port: int) -> Any:
    from solara_persisted.engine import Engine

    engine = Engine(ours_settings(port))
    engine.start()
    return engine


def bench_ours_full_path(
    port: int, decl: Declarations, sessions: int, seconds: float, trips: RoundTrips, admin: redis.Redis
) -> dict[str, float]:
    engine = ours_engine(port)
    try:
        contexts = []
        for i in range(sessions):
            context = new_context(f"ours-flush-{i}", f"ours-session-{i}")
            OursSession(engine, context, f"ours-session-{i}", {"bench.page": decl.ours_page})
            contexts.append(context)
        drive(contexts, decl.ours_page, 0.3)
        time.sleep(0.1)
        return measure_window(contexts, decl.ours_page, seconds, lambda: flush_ok(engine), trips, admin)
    finally:
        engine.drain(2.0)


def flush_ok(engine: Any) -> int:
    return int(engine.stats.block(enabled=True, breaker_state="closed")["flush_ok"])


def bench_backend_flush(
    port: int, trips: RoundTrips, admin: redis.Redis, calls: int
) -> dict[str, dict[str, float]]:
    """Each backend's fenced write of one pre-sealed envelope, back to back on one thread."""
    import solara.state as S

    from solara_persisted.backends.base import FlushRequest
    from solara_persisted.envelope import Codec, KeyRing, seal

    results: dict[str, dict[str, float]] = {}

    solara = solara_backend(port, 1)
    tag = S.effective_schema_tag()
    shmac = S.session_hmac("solara-direct")
    generation = solara.takeover("solara-direct", [shmac], tag).generation
    blob = S.encode(3, kernel_id="solara-direct", field_name="reactive:bench.page")

    def solara_flush() -> None:
        if not solara.flush("solara-direct", generation, {"reactive:bench.page": blob}, 86400.0, shmac, tag):
            raise AssertionError("Solara's fenced flush was rejected")

    results["solara"] = timed_calls(solara_flush, calls, trips, admin)
    solara.client.close()

    settings = ours_settings(port)
    ring = KeyRing.from_secrets(settings.secret_keys)
    from solara_persisted.backends import create_backend

    ours = create_backend(settings)
    identity = ring.identities("ours-direct")[0]
    takeover = ours.takeover("ours-direct", ring.identities("ours-direct"), SCHEMA_TAG, settings.ttl)
    envelope = seal(
        ring, kernel_id="ours-direct", field="bench.page", codec=Codec.JSON, version=1, payload=b"3"
    )
    request = FlushRequest(
        kernel_id="ours-direct",
        generation=takeover.generation,
        identity=identity,
        schema_tag=SCHEMA_TAG,
        fields={"bench.page": envelope},
        ttl=settings.ttl,
        removed=(),
    )

    def ours_flush() -> None:
        if ours.flush_many([request]) != [True]:
            raise AssertionError("our fenced flush was rejected")

    results["ours"] = timed_calls(ours_flush, calls, trips, admin)
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
        for key, (_, value) in decl.restore.items()
    }
    if not backend.flush("solara-restore", result.generation, fields, 86400.0, shmac, tag):
        raise AssertionError("Solara's seed write was rejected")
    backend.client.close()

    engine = ours_engine(port)
    values = {key: value for key, (_, value) in decl.restore.items()}
    restored = engine.restore("ours-restore", "ours-restore-session")
    session = engine.open_session(
        "ours-restore", "ours-restore-session", restored, lambda keys: {key: values[key] for key in keys}
    )
    for key in values:
        engine.mark_dirty(session, key)
    if engine.drain(5.0):
        raise AssertionError("our seed write did not complete")


def ours_restore_once(engine: Any, expected: Mapping[str, Any]) -> None:
    restored = engine.restore("ours-restore", "ours-restore-session")
    if restored.result != "success" or len(restored.values) != len(expected):
        raise AssertionError(f"our restore returned {restored.result} with {len(restored.values)} values")


def solara_restore_once(backend: Any, expected: Mapping[str, Any]) -> None:
    import solara.state as S

    result = backend.takeover(
        "solara-restore", S.session_hmacs("solara-restore-session"), S.effective_schema_tag()
    )
    values = {
        field: S.decode(blob, kernel_id="solara-restore", field_name=field)
        for field, blob in result.fields.items()
    }
    if result.reason != "restored" or len(values) != len(expected):
        raise AssertionError(f"Solara's restore returned {result.reason} with {len(values)} values")


def bench_restore_warm(port: int, decl: Declarations, runs: int) -> dict[str, float]:
    import solara.state as S  # noqa: F401

    expected = {key: value for key, (_, value) in decl.restore.items()}
    engine = ours_engine(port)
    backend = solara_backend(port, 1)
    out = {}
    for name, call in (
        ("ours", lambda: ours_restore_once(engine, expected)),
        ("solara", lambda: solara_restore_once(backend, expected)),
    ):
        for _ in range(20):
            call()
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        out[name] = statistics.median(samples) * 1e3
    backend.client.close()
    engine.drain(1.0)
    return out


def bench_restore_cold(port: int) -> dict[str, float]:
    """The first restore in a fresh process, for each side, with the Lua scripts gone from Redis."""
    admin = admin_client(port)
    out = {}
    for side in ("ours", "solara"):
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
        out[side] = json.loads(completed.stdout.strip().splitlines()[-1])["ms"]
    admin.close()
    return out


def cold_restore_child(side: str, port: int) -> None:
    configure_solara(port)
    decl = Declarations()
    expected = {key: value for key, (_, value) in decl.restore.items()}
    if side == "ours":
        engine = ours_engine(port)
        start = time.perf_counter()
        ours_restore_once(engine, expected)
    else:
        backend = solara_backend(port, 1)
        start = time.perf_counter()
        solara_restore_once(backend, expected)
    print(json.dumps({"ms": (time.perf_counter() - start) * 1e3}))


# -- 4. memory -----------------------------------------------------------------------------------


def bench_memory(port: int, decl: Declarations, admin: redis.Redis) -> dict[str, Any]:
    """One session holding page=3 and query="shoes", written by each engine's full path."""
    import solara.state as S

    backend = solara_backend(port, 1)
    tag = S.effective_schema_tag()
    context = new_context("solara-memory", "solara-memory-session")
    result = backend.takeover(context.id, S.session_hmacs("solara-memory-session"), tag)
    manager = S.attach(
        context,
        backend,
        session_hmac=S.session_hmac("solara-memory-session"),
        schema_tag=tag,
        generation=result.generation,
        envelopes=result.fields,
        restore_reason=result.reason,
    )
    worker = S.KernelFlushWorker(
        manager,
        breaker=S.get_breaker(),
        has_connected_page=lambda: True,
        on_superseded=lambda: None,
        debounce=FLUSH_DEBOUNCE,
    )
    worker.start()
    with context:
        decl.solara_page.value = 3
        decl.solara_query.value = "shoes"
    worker.close(timeout=2.0)
    backend.client.close()

    engine = ours_engine(port)
    context = new_context("ours-memory", "ours-memory-session")
    OursSession(
        engine, context, "ours-memory-session", {"bench.page": decl.ours_page, "bench.query": decl.ours_query}
    )
    with context:
        decl.ours_page.value = 3
        decl.ours_query.value = "shoes"
    if engine.drain(2.0):
        raise AssertionError("our memory-session write did not complete")

    out: dict[str, Any] = {}
    for side, prefix, kernel_id, fields in (
        ("ours", OURS_PREFIX, "ours-memory", ("bench.page", "bench.query")),
        ("solara", SOLARA_PREFIX, "solara-memory", ("reactive:bench.page", "reactive:bench.query")),
    ):
        keys = [k for k in admin.scan_iter(match=f"{prefix}*", count=1000) if kernel_id.encode() in k]
        if len(keys) != 1:
            raise AssertionError(f"{side}: expected one hash for {kernel_id}, found {keys}")
        stored = admin.hgetall(keys[0])
        missing = [field for field in fields if field.encode() not in stored]
        if missing:
            raise AssertionError(f"{side}: the session hash lacks {missing}")
        out[side] = admin.memory_usage(keys[0], samples=0)
        out[side + "_encoding"] = admin.object("encoding", keys[0]).decode()
        out[side + "_fields"] = len(stored)
    return out


# -- report -----------------------------------------------------------------------------------


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("nan")


def report(results: dict[str, Any], args: argparse.Namespace) -> Table:
    table = Table(
        title=f"solara-persisted vs Solara {results['solara_version']} built-in engine "
        f"(redis-server {results['redis_version']}, loopback)"
    )
    for column in ("measure", "ours", "Solara", "ratio", "goal", "met?"):
        table.add_column(column, justify="left" if column in ("measure", "goal") else "right")

    def row(measure: str, ours: float, theirs: float, fmt: str, goal: str, met: bool | None) -> None:
        mark = "—" if met is None else ("[green]yes[/]" if met else "[red]NO[/]")
        table.add_row(
            measure, format(ours, fmt), format(theirs, fmt), f"{ratio(ours, theirs):.2f}×", goal, mark
        )

    for r in results["codec"]:
        q = ratio(r["ours_encode"], r["solara_encode"])
        row(f"encode+sign {r['label']} (µs)", r["ours_encode"], r["solara_encode"], ".2f", "≤ 0.5×", q <= 0.5)
    for r in results["codec"]:
        row(f"verify+decode {r['label']} (µs)", r["ours_decode"], r["solara_decode"], ".2f", "", None)
    small = results["codec"][0]
    row("envelope size, 50 B value (bytes)", small["ours_bytes"], small["solara_bytes"], ".0f", "", None)
    full = results["full"]
    q = ratio(full["ours"]["flushes_per_s"], full["solara"]["flushes_per_s"])
    row(
        f"full-path flushes/s ({args.sessions} sessions, {args.seconds:g} s)",
        full["ours"]["flushes_per_s"],
        full["solara"]["flushes_per_s"],
        ",.0f",
        "≥ 2×",
        q >= 2,
    )
    direct = results["direct"]
    row(
        "backend flush calls/s (1 thread)",
        direct["ours"]["per_s"],
        direct["solara"]["per_s"],
        ",.0f",
        "",
        None,
    )
    ours_trips = direct["ours"]["trips_per_flush"]
    row(
        "round trips per flush (1 session)",
        ours_trips,
        direct["solara"]["trips_per_flush"],
        ".2f",
        "= 1",
        ours_trips == 1,
    )
    row(
        f"round trips per flush ({args.sessions} sessions)",
        full["ours"]["trips_per_flush"],
        full["solara"]["trips_per_flush"],
        ".3f",
        "",
        None,
    )
    row(
        "server commands per flush (1 session)",
        direct["ours"]["commands_per_flush"],
        direct["solara"]["commands_per_flush"],
        ".1f",
        "",
        None,
    )
    restore = results["restore"]
    for label, key in (("cold, 1st call in a new process", "cold"), ("warm, median", "warm")):
        q = ratio(restore[key]["ours"], restore[key]["solara"])
        row(
            f"restore {RESTORE_KEYS} keys, {label} (ms)",
            restore[key]["ours"],
            restore[key]["solara"],
            ".3f",
            "≤ 0.5×",
            q <= 0.5,
        )
    memory = results["memory"]
    q = ratio(memory["ours"], memory["solara"])
    row(
        f"Redis bytes per 2-value session ({memory['ours_encoding']} / {memory['solara_encoding']})",
        memory["ours"],
        memory["solara"],
        ",.0f",
        "≤ 0.6×",
        q <= 0.6,
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sessions", type=int, default=200, help="sessions changing a value in the flush run"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each full-path flush run")
    parser.add_argument(
        "--flush-calls", type=int, default=3000, help="back-to-back backend flush calls per side"
    )
    parser.add_argument("--restore-runs", type=int, default=300, help="warm restores per side (median)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--cold-restore", choices=("ours", "solara"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("solara.state").setLevel(logging.WARNING)
    if args.cold_restore:
        cold_restore_child(args.cold_restore, args.port)
        return

    console = Console()
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
        with console.status(f"full-path flushes, Solara, {args.sessions} sessions"):
            results["full"]["solara"] = bench_solara_full_path(
                port, decl, args.sessions, args.seconds, trips, admin
            )
        with console.status(f"full-path flushes, ours, {args.sessions} sessions"):
            results["full"]["ours"] = bench_ours_full_path(
                port, decl, args.sessions, args.seconds, trips, admin
            )
        with console.status("restore of a 20-key session"):
            seed_restore_data(port, decl)
            results["restore"] = {
                "warm": bench_restore_warm(port, decl, args.restore_runs),
                "cold": bench_restore_cold(port),
            }
        with console.status("Redis memory per session"):
            results["memory"] = bench_memory(port, decl, admin)
        admin.close()
    console.print(report(results, args))
    for side in ("solara", "ours"):
        full = results["full"][side]
        console.print(
            f"{side}: {full['changes']:,} value changes -> {full['flushes']:,} acknowledged flushes, "
            f"{full['commands_per_flush']:.1f} server commands per flush"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
