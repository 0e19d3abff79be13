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
  ``flush_ok`` counter over a fixed window, ``--rounds`` times per side taking turns (the median
  of each side, and the goal judged on the median of the rounds' ratios). Solara:
  ``KernelStatePersistence`` attached after a takeover exactly as its server's connect path does,
  plus one ``KernelFlushWorker`` thread per kernel, as in production. Ours: one ``Engine`` (one writer thread for every session); the
  listener calls ``engine.mark_dirty`` and the snapshot peeks the reactive in its kernel context,
  which is what a server integration does. Same driver loop for both.
- backend flush: one fenced write of one pre-sealed envelope, back to back on one thread, no
  encoding: the bare cost of each backend's write verb (Solara ``RedisStateBackend.flush``, ours
  ``RedisBackend.flush_many`` of one request, which is what our writer calls).
- round trips: counted on the client: every ``send_packed_command`` of redis-py writes one request
  (or one pipeline) and waits for its answer before the next, so one call is one round trip.
  Commands come from the server's ``INFO commandstats`` (every ``redis.call`` inside a script counts).
- restore: ours ``engine.restore`` (session address, takeover with its budget check, manifest
  verify, envelope verify, decode, counters); Solara: what its connect path does before ``attach``:
  ``session_hmacs`` + ``backend.takeover`` + ``decode`` of every envelope. Warm: in each of a few
  child processes, many calls of both sides interleaved call by call; the median over all. Cold is
  the first call in a fresh process (imports done, engine/backend started and connected), median
  over a few processes, once with Redis still holding both engines' Lua scripts (a fleet's normal
  state) and once after ``SCRIPT FLUSH`` (Redis restarted: both must load their scripts).
- memory: ``MEMORY USAGE key SAMPLES 0`` of the one hash each engine writes for a session holding a
  page number and a short query, both written through the full path above, with UUID kernel ids
  (as Solara assigns them) and prefixes of the same length, since the key name is counted. Solara's
  envelope adds 57 bytes to the JSON payload, so any value whose JSON is over 7 bytes (a str of 6+
  characters) exceeds Redis's 64-byte listpack value limit and turns the whole hash into a
  hashtable; the bench shows one session below and one above that edge.

"Ours before" (``--before PATH``, a worktree of the previous commit): the restore and memory
measures also run that checkout's ``solara_persisted`` in child processes of this script (the
variable ``BENCH_CODE_ROOT`` puts it first on ``sys.path``; each child reports the file it
imported and the parent refuses an answer from the wrong code). Its sessions are written by its
own write path under its own prefix in the same Redis. Its warm children alternate with ours, and
"ours / before" is paired: per round, each version over Solara's restore timed in the same child
(the same code in both, so it cancels the load that changed between them); cold pairs the
processes that ran back to back. The secret is generated once per run (``BENCH_SECRET``,
inherited by every child).

The ``solara.state`` logger is set to WARNING so neither engine pays for per-flush log output.
Solara's default Redis client pool (100 connections) raises "Too many connections" beyond 100
flushing kernels, so the bench hands it a larger pool through its ``client=`` seam.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import redis
import redis.connection
from rich.console import Console
from rich.markup import escape
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
#: ``--before PATH`` runs some measures in child processes whose ``solara_persisted`` is another
#: checkout's (the previous commit's worktree): the parent names it in this variable, and it goes
#: first on ``sys.path`` (ahead of the editable install of this checkout, which a .pth appends).
CODE_ROOT_ENV = "BENCH_CODE_ROOT"


def use_code_root() -> Path:
    """Put the checkout whose ``solara_persisted`` this process measures first on ``sys.path``."""
    code_root = Path(os.environ.get(CODE_ROOT_ENV) or ROOT).resolve()
    for path in (ROOT, code_root):  # the last inserted wins
        with contextlib.suppress(ValueError):
            sys.path.remove(str(path))
        sys.path.insert(0, str(path))
    return code_root


CODE_ROOT = use_code_root()
#: This process measures the previous code ("ours before"), not this checkout's.
BEFORE = CODE_ROOT != ROOT

REDIS_SERVER = "/usr/bin/redis-server"
#: The same secret for both engines (and every child process and server of a run): generated once
#: per run, a throwaway value. ``Settings.validate`` refuses typed patterns, so it is never a literal.
SECRET_ENV = "BENCH_SECRET"
SECRET = os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(32))
SCHEMA_TAG = "bench"
#: "ours before" writes under its own prefix: its hashes and key-ring fingerprint never meet ours.
#: All three are 11 characters: the key name is part of a session's ``MEMORY USAGE``.
OURS_PREFIX = "bench:prev:" if BEFORE else "bench:ours:"
SOLARA_PREFIX = "bench:sola:"
CHILD_TIMEOUT = 300.0
FLUSH_DEBOUNCE = 0.001
TTL = 86400.0
RESTORE_KEYS = 20
CODEC_KERNEL = "kernel-codec"
CODEC_SESSION = "session-codec"
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


# -- our engine's API now and before ------------------------------------------------------------
# The measures that also run on the previous code (``--before``) reach our engine only through
# these, so the same function drives either version.


def session_key(kernel_id: str, session_id: str) -> str:
    """What follows the prefix in a session's hash key: its session address now, its kernel id before."""
    try:
        from solara_persisted.address import session_address
    except ImportError:  # before session-bound storage: one hash per kernel id
        return kernel_id
    return session_address(session_id, kernel_id)


def open_session(engine: Any, kernel_id: str, session_id: str, restored: Any, snapshot: Any) -> Any:
    """``Engine.open_session``: the session's address comes with ``restored`` now; before, the cookie was an argument."""
    if "session_id" in inspect.signature(engine.open_session).parameters:
        return engine.open_session(kernel_id, session_id, restored, snapshot)
    return engine.open_session(kernel_id, restored, snapshot)


def code_origin() -> str:
    """Where this process's ``solara_persisted`` was imported from (checked against ``--before``)."""
    import solara_persisted

    return str(Path(solara_persisted.__file__).resolve())


class Declarations:
    """Both engines' declarations of the same keys, made once per process."""

    def __init__(self) -> None:
        import solara
        import solara.server.starlette  # reactives are per kernel only once a server module is loaded
        from solara.state import PersistConfig

        from solara_persisted.spec import persisted, registry

        # Importing solara_persisted beside Solara's server modules turns the state lines on (its
        # autostart says persistence is off); neither engine pays for per-flush lines here.
        logging.getLogger("solara.state").setLevel(logging.WARNING)
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
        # The same keys for Solara's engine (field names count in the memory measure). Importing
        # solara_persisted adopts persist=True reactives and refuses a key declared both ways, so
        # Solara's are declared in a registry of their own: ours never sees them.
        with registry.isolated():
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

    def __init__(self, backend: Any, context: Any, debounce: float = FLUSH_DEBOUNCE) -> None:
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
            debounce=debounce,
        )
        self.worker.start()


class OursSession:
    """What our Solara integration does on connect: its ``KernelPersistence`` in the kernel's
    persistence slot; the first read of each reactive restores it and watches it."""

    def __init__(self, engine: Any, context: Any, reactives: Mapping[str, Any]) -> None:
        from solara_persisted.solara_integration import KernelPersistence

        context.state_persistence = context.state_flush_worker = KernelPersistence(engine, context)
        with context:
            for reactive in reactives.values():
                reactive.peek()


# -- 1. encode+sign, verify+decode --------------------------------------------------------------


def best_us(stmt: Callable[[], Any], number: int, repeat: int = 5) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e6


def bench_codec(decl: Declarations) -> list[dict[str, Any]]:
    import solara.state as S

    from solara_persisted.address import session_address
    from solara_persisted.envelope import KeyRing, open_envelope, seal

    ring = KeyRing.from_secrets([SECRET])
    # Ours binds the session's address, Solara the kernel id.
    address = session_address(CODEC_SESSION, CODEC_KERNEL)
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
                address=address,
                field=key,
                codec=spec.codec_id,
                version=spec.version,
                payload=payload,
            )

        def solara_encode(value: Any = value, field: str = field) -> bytes:
            return S.encode(value, kernel_id=CODEC_KERNEL, field_name=field)

        ours_blob, solara_blob = ours_encode(), solara_encode()

        def ours_decode(blob: bytes = ours_blob, codec: Any = codec, key: str = key) -> Any:
            return codec.loads(open_envelope(ring, blob, address=address, field=key).payload)

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


def bench_compression() -> list[dict[str, Any]]:
    """The candidates for large payloads on the 1 KB and 100 KB values: stored bytes against the
    CPU to compress and expand (why the envelope uses zstd at level 1)."""
    import zlib

    import orjson
    import zstandard

    candidates: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        f"zlib {level}": (lambda data, level=level: zlib.compress(data, level), zlib.decompress) for level in (1, 6)
    }
    for level in (1, 3, 9):
        candidates[f"zstd {level}"] = (
            zstandard.ZstdCompressor(level=level).compress,
            zstandard.ZstdDecompressor().decompress,
        )
    rows = []
    for label, _, _, factory, number in CODEC_CASES[1:]:
        payload = orjson.dumps(factory())
        for name, (compress, expand) in candidates.items():
            packed = compress(payload)
            if expand(packed) != payload:
                raise AssertionError(f"{name} does not round-trip {label}")
            rows.append(
                {
                    "value": label,
                    "codec": name,
                    "bytes": len(packed),
                    "ratio": len(packed) / len(payload),
                    "compress_us": best_us(lambda compress=compress, payload=payload: compress(payload), number),
                    "expand_us": best_us(lambda expand=expand, packed=packed: expand(packed), number),
                }
            )
    return rows


def compression_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="compression candidates for large payloads (JSON as our codec writes it)")
    for column in ("value", "codec", "bytes", "of the JSON", "compress (µs)", "expand (µs)"):
        table.add_column(column, justify="left" if column in ("value", "codec") else "right")
    for r in rows:
        table.add_row(
            r["value"],
            r["codec"],
            f"{r['bytes']:,}",
            f"{r['ratio']:.2f}",
            f"{r['compress_us']:.1f}",
            f"{r['expand_us']:.1f}",
        )
    return table


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
        engine.close()  # its key-ring check too, which would otherwise add round trips to later rounds


def full_path_rounds(
    port: int,
    decl: Declarations,
    sessions: int,
    seconds: float,
    trips: RoundTrips,
    admin: redis.Redis,
    label: str,
    rounds: int,
) -> dict[str, Any]:
    """Both sides ``rounds`` times, taking turns at going first so a drift of the machine lands on
    both: each side's medians, and the ratio of every round. One pair of 3 s windows swings
    between 3× and 4.7× (Solara's 200 threads and our writer share one GIL with the driver)."""
    runs: list[dict[str, dict[str, float]]] = []
    for r in range(rounds):
        sides = (("solara", bench_solara_full_path), ("ours", bench_ours_full_path))
        runs.append(
            {
                side: bench(port, decl, sessions, seconds, trips, admin, f"{label}{r}")
                for side, bench in (sides if r % 2 == 0 else sides[::-1])
            }
        )
    medians = {
        side: {measure: statistics.median(run[side][measure] for run in runs) for measure in runs[0][side]}
        for side in ("solara", "ours")
    }
    ratios = [ratio(run["ours"]["flushes_per_s"], run["solara"]["flushes_per_s"]) for run in runs]
    return {**medians, "ratios": ratios, "rounds": runs}


def flush_ok(engine: Any) -> int:
    return int(engine.stats.block(enabled=True, breaker_state="closed")["flush_ok"])


def bench_backend_flush(
    port: int, trips: RoundTrips, admin: redis.Redis, calls: int
) -> dict[str, dict[str, float]]:
    """Each backend's fenced write of one pre-sealed envelope, back to back on one thread."""
    import solara.state as S

    from solara_persisted.address import session_address
    from solara_persisted.backends import create_backend
    from solara_persisted.backends.base import FlushRequest, Meta, SessionBudget, tag_digest
    from solara_persisted.engine import fresh_generation
    from solara_persisted.envelope import Codec, KeyRing, envelope_tag, seal

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
    address = session_address("ours-direct-session", "ours-direct")
    budget = SessionBudget(settings.max_session_keys, settings.max_session_bytes)
    takeover = ours.takeover(address, SCHEMA_TAG, TTL, budget)
    generation = takeover.generation or fresh_generation()  # a miss: the engine picks a fresh one
    envelope = seal(ring, address=address, field="bench.page", codec=Codec.JSON, version=1, payload=b"3")
    tag = tag_digest(SCHEMA_TAG)
    key_id, mac = ring.sign_manifest(
        address=address, tag=tag, counter=1, fields={"bench.page": envelope_tag(envelope)}
    )
    fields = {"bench.page": envelope}
    meta = Meta(tag, key_id, 1, mac, generation)
    if not ours.flush(FlushRequest(address, meta, fields, TTL)):  # creates the hash
        raise AssertionError("our first fenced flush was rejected")
    # What the writer sends once the hash exists: its manifest covers a stored field, so must_exist.
    request = FlushRequest(address, meta, fields, TTL, must_exist=True)

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


# -- child processes ------------------------------------------------------------------------------


def run_child(measure: str, port: int, code_root: Path | None, *args: str) -> dict[str, Any]:
    """Run ``measure`` in a fresh process of this script; ``code_root`` None is this checkout's code.

    The child answers with one JSON line, which names the ``solara_persisted`` it imported: a
    "before" number that was measured on this checkout's code would be worse than none.
    """
    env = dict(os.environ)
    env.pop(CODE_ROOT_ENV, None)
    if code_root is not None:
        env[CODE_ROOT_ENV] = str(code_root)
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", measure, "--port", str(port), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0 or not completed.stdout.strip():
        raise RuntimeError(
            f"child {measure} {args} ({code_root or ROOT}) failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    expected = (code_root or ROOT).resolve()
    if not Path(result["code"]).is_relative_to(expected):
        raise RuntimeError(
            f"child {measure} imported solara_persisted from {result['code']}, not from {expected}"
        )
    return result


def child_answer(result: Mapping[str, Any]) -> None:
    print(json.dumps({**result, "code": code_origin()}))


# -- 3. restore -----------------------------------------------------------------------------------

RESTORE_KERNEL, RESTORE_SESSION = "ours-restore", "ours-restore-session"


def seed_solara_restore(port: int, decl: Declarations) -> None:
    """Write Solara's 20-key session through its own write path."""
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


def seed_ours_restore(port: int, decl: Declarations) -> None:
    """Write our 20-key session through our engine's own write path (this process's version of it)."""
    engine = ours_engine(port)
    values = decl.restore_expected
    restored = engine.restore(RESTORE_KERNEL, RESTORE_SESSION)
    session = open_session(
        engine, RESTORE_KERNEL, RESTORE_SESSION, restored, lambda keys: {key: values[key] for key in keys}
    )
    for key in values:
        engine.mark_dirty(session, key)
    if engine.drain(5.0):
        raise AssertionError("our seed write did not complete")
    engine.backend.close()


def ours_restore_once(engine: Any, expected: Mapping[str, Any]) -> None:
    restored = engine.restore(RESTORE_KERNEL, RESTORE_SESSION)
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


def warm_restore_child(port: int, runs: int) -> dict[str, Any]:
    """``runs`` warm restores of each side in this process, interleaved call by call (ms each)."""
    configure_solara(port)
    decl = Declarations()
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
            samples[side].append((time.perf_counter() - start) * 1e3)
    backend.client.close()
    engine.backend.close()
    return samples


def paired_ratio(ours: list[float], before: list[float]) -> float:
    """The median of per-pair ratios: each pair was measured side by side, so drift cancels."""
    return statistics.median(a / b for a, b in zip(ours, before, strict=True))


def bench_restore_warm(port: int, runs: int, rounds: int, before: Path | None) -> dict[str, Any]:
    """Medians over ``rounds`` child processes per code version, alternated round by round.

    Each child times our restore and Solara's call by call. With ``before``, the previous code's
    children alternate with ours in the same harness, and "ours / before" is the median over
    rounds of (ours / Solara in our child) / (before / Solara in its child): Solara's restore is the
    same code in both, so it cancels what the machine's other load did between the two children.
    """
    codes: list[Path | None] = [None, before] if before is not None else [None]
    samples: dict[str, list[float]] = {"ours": [], "solara": [], "before": [], "solara_beside_before": []}
    per_round: dict[str, list[float]] = {"ours": [], "before": []}  # each child's median, over Solara's
    for number in range(rounds):
        for code in codes if number % 2 == 0 else codes[::-1]:  # neither version always goes first
            result = run_child("warm", port, code, "--restore-runs", str(runs))
            name = "ours" if code is None else "before"
            samples[name] += result["ours"]
            samples["solara" if code is None else "solara_beside_before"] += result["solara"]
            per_round[name].append(statistics.median(result["ours"]) / statistics.median(result["solara"]))
    out: dict[str, Any] = {side: statistics.median(values) for side, values in samples.items() if values}
    if before is not None:
        out["vs_before"] = paired_ratio(per_round["ours"], per_round["before"])
        out["rounds"] = per_round
    return out


def bench_restore_cold(port: int, processes: int, flush_scripts: bool, before: Path | None) -> dict[str, Any]:
    """The first restore in a fresh process for each side, median over ``processes`` processes.

    With ``before``, "ours / before" is the median of the ratios of the two processes that ran
    back to back (which of them goes first alternates).
    """
    admin = admin_client(port)
    sides: list[tuple[str, str, Path | None]] = [("solara", "solara", None), ("ours", "ours", None)]
    if before is not None:
        sides.append(("before", "ours", before))
    samples: dict[str, list[float]] = {name: [] for name, _, _ in sides}
    for number in range(processes):
        for name, side, code in sides if number % 2 == 0 else [sides[0], *sides[:0:-1]]:
            if flush_scripts:
                admin.script_flush()
            samples[name].append(run_child("cold", port, code, "--side", side)["ms"])
    admin.close()
    out: dict[str, Any] = {side: statistics.median(values) for side, values in samples.items()}
    out["samples"] = samples
    if before is not None:
        out["vs_before"] = paired_ratio(samples["ours"], samples["before"])
    return out


def cold_restore_child(side: str, port: int) -> dict[str, float]:
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
    return {"ms": (time.perf_counter() - start) * 1e3}


# -- 4. memory -----------------------------------------------------------------------------------


def memory_kernel(query: str) -> tuple[str, str]:
    """``(kernel id, session cookie)`` of a memory session: UUIDs, as Solara assigns them.

    Before session-bound storage our key held the kernel id, so its length is part of what is
    compared; the same ids on every side, each under a prefix of the same length.
    """
    kernel_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-memory-kernel/{query}"))
    return kernel_id, str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-memory-session/{query}"))


def hash_memory(admin: redis.Redis, side: str, key: str, fields: tuple[str, ...]) -> dict[str, Any]:
    stored = admin.hgetall(key)
    missing = [field for field in fields if field.encode() not in stored]
    if missing:
        raise AssertionError(f"{side}: the session hash {key!r} lacks {missing}")
    return {"bytes": admin.memory_usage(key, samples=0), "encoding": admin.object("encoding", key).decode()}


def memory_solara(port: int, decl: Declarations, admin: redis.Redis, query: str) -> dict[str, Any]:
    """Solara's session holding page=3 and ``query``, written by its full path."""
    kernel_id, session_id = memory_kernel(query)
    backend = solara_backend(port, 1)
    context = new_context(kernel_id, session_id)
    worker = SolaraSession(backend, context).worker
    with context:
        decl.solara_page.value = 3
        decl.solara_query.value = query
    worker.close(timeout=2.0)  # its final flush: whatever the debounce had not written yet
    backend.client.close()
    fields = ("reactive:bench.page", "reactive:bench.query")
    return hash_memory(admin, "solara", SOLARA_PREFIX + kernel_id, fields)


def memory_ours(port: int, decl: Declarations, admin: redis.Redis, query: str) -> dict[str, Any]:
    """Our session holding page=3 and ``query``, written by our full path (this process's version)."""
    kernel_id, session_id = memory_kernel(query)
    engine = ours_engine(port)
    context = new_context(kernel_id, session_id)
    OursSession(engine, context, {"bench.page": decl.ours_page, "bench.query": decl.ours_query})
    with context:
        decl.ours_page.value = 3
        decl.ours_query.value = query
    if engine.drain(2.0):
        raise AssertionError("our memory-session write did not complete")
    engine.backend.close()
    key = OURS_PREFIX + session_key(kernel_id, session_id)
    return hash_memory(admin, "ours", key, ("bench.page", "bench.query"))


def memory_child(port: int, query: str) -> dict[str, Any]:
    configure_solara(port)
    decl = Declarations()
    admin = admin_client(port)
    out = memory_ours(port, decl, admin, query)
    admin.close()
    return out


def bench_memory(
    port: int, decl: Declarations, admin: redis.Redis, query: str, before: Path | None
) -> dict[str, Any]:
    """``MEMORY USAGE`` of one session per side holding page=3 and ``query``."""
    out = {"solara": memory_solara(port, decl, admin, query), "ours": memory_ours(port, decl, admin, query)}
    if before is not None:
        out["before"] = run_child("memory", port, before, "--query", query)
    return out


# -- report -----------------------------------------------------------------------------------


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("nan")


Goal = tuple[str, "bool | None"]  # the goal as written, and whether it is met (None: not measured)


def goal_cells(goals: tuple[Goal, ...]) -> tuple[str, str]:
    marks = {None: "–", True: "[green]yes[/]", False: "[red]NO[/]"}
    return "; ".join(text for text, _ in goals), "; ".join(marks[met] for _, met in goals)


def new_table(title: str) -> Table:
    table = Table(title=title)
    columns = ("measure", "ours", "ours before", "Solara", "ours/Solara", "ours/before", "goal", "met?")
    for column in columns:
        table.add_column(column, justify="left" if column in ("measure", "goal") else "right")
    return table


def add_row(
    table: Table,
    measure: str,
    ours: float,
    theirs: float,
    fmt: str,
    goals: tuple[Goal, ...] = (),
    *,
    before: float | None = None,
    vs_before: float | None = None,
    before_as_difference: str = "",
    note: str = "",
) -> None:
    """One row. ``vs_before``: ours / before when it is not ``ours / before`` of the medians shown
    (a paired estimate); ``before_as_difference`` names the unit in which ours - before is shown
    instead of a ratio."""
    if before is None:
        before_cell = before_column = ""
    else:
        before_cell = format(before, fmt)
        if before_as_difference:
            before_column = f"{ours - before:+,.0f} {before_as_difference}"
        else:
            before_column = f"{ratio(ours, before) if vs_before is None else vs_before:.2f}×"
    goal, met = goal_cells(goals)
    table.add_row(
        escape(measure),
        format(ours, fmt),
        before_cell,
        escape(format(theirs, fmt) + note),
        f"{ratio(ours, theirs):.2f}×",
        before_column,
        escape(goal),
        met,
    )


def report(results: dict[str, Any], args: argparse.Namespace) -> Table:
    table = new_table(
        f"solara-persisted vs Solara {results['solara_version']}'s built-in engine, "
        f"redis-server {results['redis_version']} on loopback"
        + (f"; ours before: {results['before']}" if results.get("before") else "")
    )

    def row(
        measure: str, ours: float, theirs: float, fmt: str, goals: tuple[Goal, ...] = (), **kw: Any
    ) -> None:
        add_row(table, measure, ours, theirs, fmt, goals, **kw)

    for r in results["codec"]:
        q = ratio(r["ours_encode"], r["solara_encode"])
        row(
            f"encode+sign {r['label']} (µs)",
            r["ours_encode"],
            r["solara_encode"],
            ".2f",
            (("≤ 0.5×", q <= 0.5),),
        )
    for r in results["codec"]:
        row(f"verify+decode {r['label']} (µs)", r["ours_decode"], r["solara_decode"], ".2f")
    for r in results["codec"]:
        q = ratio(r["ours_bytes"], r["solara_bytes"])
        large = r is results["codec"][-1]
        row(
            f"envelope bytes, {r['label']} (ours zstd-compressed above 1 KiB)",
            r["ours_bytes"],
            r["solara_bytes"],
            ",.0f",
            (("≤ 0.3× (issue 13)", q <= 0.3),) if large else (),
        )
    table.add_section()
    many, one = results["full"]["many"], results["full"]["one"]
    q = statistics.median(many["ratios"])
    spread = f"{min(many['ratios']):.1f}-{max(many['ratios']):.1f}×"
    row(
        f"full-path flushes/s, {args.sessions} sessions, median of {args.rounds} rounds (their ratios {spread})",
        many["ours"]["flushes_per_s"],
        many["solara"]["flushes_per_s"],
        ",.0f",
        (("≥ 2×", q >= 2), ("≥ 5× (issue 13)", q >= 5)),
    )
    row(
        f"full-path flushes/s, 1 session, median of {args.rounds} rounds",
        one["ours"]["flushes_per_s"],
        one["solara"]["flushes_per_s"],
        ",.0f",
    )
    direct = results["direct"]
    row("backend flush calls/s, 1 thread", direct["ours"]["per_s"], direct["solara"]["per_s"], ",.0f")
    trips = (one["ours"]["trips_per_flush"], direct["ours"]["trips_per_flush"])
    row(
        "round trips per flush, 1 session",
        one["ours"]["trips_per_flush"],
        one["solara"]["trips_per_flush"],
        ".3f",
        (("= 1", all(t == 1 for t in trips)),),
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
        ours, theirs, before = restore[key]["ours"], restore[key]["solara"], restore[key].get("before")
        vs_before = restore[key].get("vs_before")
        q = ratio(ours, theirs)
        goals: tuple[Goal, ...] = (("≤ 0.5×", q <= 0.5),)
        if key == "warm":
            goals += (("≤ 0.7× (issue)", q <= 0.7),)
        goals += (("≤ 1.1× before", None if vs_before is None else vs_before <= 1.1),)
        row(
            f"restore {RESTORE_KEYS} keys, {label} (ms)",
            ours,
            theirs,
            ".3f",
            goals,
            before=before,
            vs_before=vs_before,
        )
    table.add_section()
    for query, memory in zip(MEMORY_QUERIES, results["memory"], strict=True):
        ours, theirs = memory["ours"]["bytes"], memory["solara"]["bytes"]
        before = memory["before"]["bytes"] if "before" in memory else None
        encodings = "/".join(
            memory[side]["encoding"] for side in ("ours", "before", "solara") if side in memory
        )
        row(
            f"Redis bytes/session {{page: 3, query: {query!r}}} ({encodings})",
            ours,
            theirs,
            ",.0f",
            (
                ("≤ 0.6×", ratio(ours, theirs) <= 0.6),
                ("≤ before + 40 B", None if before is None else ours <= before + 40),
            ),
            before=before,
            before_as_difference="B",
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
            "before": str(args.before) if args.before else None,
            "load": [os.getloadavg()[0]],
        }
        with console.status("declaring both engines' keys"):
            decl = Declarations()
        with console.status("encode+sign / verify+decode"):
            results["codec"] = bench_codec(decl)
        with console.status("compression candidates"):
            results["compression"] = bench_compression()
        with console.status("backend flush, one thread"):
            results["direct"] = bench_backend_flush(port, trips, admin, args.flush_calls)
        results["full"] = {}
        for label, sessions in (("many", args.sessions), ("one", 1)):
            with console.status(f"full-path flushes, {sessions} session(s), {args.rounds} rounds"):
                results["full"][label] = full_path_rounds(
                    port, decl, sessions, args.seconds, trips, admin, label, args.rounds
                )
        with console.status(f"restore of a {RESTORE_KEYS}-key session"):
            seed_solara_restore(port, decl)
            seed_ours_restore(port, decl)
            if args.before:
                run_child("seed", port, args.before)
            results["restore"] = {
                "warm": bench_restore_warm(port, args.restore_runs, args.restore_rounds, args.before),
                "cold": bench_restore_cold(port, args.cold_processes, False, args.before),
                "cold_flushed": bench_restore_cold(port, args.cold_processes, True, args.before),
            }
        with console.status("Redis memory per session"):
            results["memory"] = [
                bench_memory(port, decl, admin, query, args.before) for query in MEMORY_QUERIES
            ]
        admin.close()
    results["load"].append(os.getloadavg()[0])
    return results


def load_line(load: list[float]) -> str:
    """Other work on the machine moves every number: say how busy it was."""
    return f"1-minute load average at start / end: {load[0]:.2f} / {load[-1]:.2f} on {os.cpu_count()} cores"


def child(args: argparse.Namespace) -> None:
    """One measure in this fresh process, answered as one JSON line (see ``run_child``)."""
    if args.child == "seed":
        configure_solara(args.port)
        seed_ours_restore(args.port, Declarations())
        child_answer({})
    elif args.child == "warm":
        child_answer(warm_restore_child(args.port, args.restore_runs))
    elif args.child == "cold":
        child_answer(cold_restore_child(args.side, args.port))
    else:
        child_answer(memory_child(args.port, args.query))


def before_checkout(raw: str) -> Path:
    path = Path(raw).resolve()
    if not (path / "solara_persisted" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(f"{path} holds no solara_persisted package (a checkout's root?)")
    if path == ROOT:
        raise argparse.ArgumentTypeError(f"{path} is this checkout; give the previous commit's worktree")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="sessions changing a value (default 200)")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="length of each full-path window (default 3)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=9,
        help="full-path windows per side, taking turns; the goal is judged on the median ratio (default 9: "
        "one window's ratio spans 3-17x)",
    )
    parser.add_argument(
        "--flush-calls", type=int, default=3000, help="backend flush calls per side (default 3000)"
    )
    parser.add_argument(
        "--restore-runs", type=int, default=300, help="warm restores per side per child process (default 300)"
    )
    parser.add_argument(
        "--restore-rounds",
        type=int,
        default=5,
        help="child processes per code version for the warm restore, alternated (default 5)",
    )
    parser.add_argument(
        "--cold-processes", type=int, default=5, help="fresh processes per cold sample (default 5)"
    )
    parser.add_argument(
        "--before",
        type=before_checkout,
        metavar="PATH",
        help="a checkout of the previous commit (git worktree add /tmp/before <commit>): the restore and "
        "memory measures also run its solara_persisted, in child processes, as 'ours before'",
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this file")
    parser.add_argument("--child", choices=("seed", "warm", "cold", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=("ours", "solara"), help=argparse.SUPPRESS)
    parser.add_argument("--query", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("solara.state").setLevel(logging.WARNING)
    if args.child:
        child(args)
        return
    if BEFORE:
        parser.error(f"{CODE_ROOT_ENV} is set: measure the previous code with --before PATH instead")
    console = Console() if sys.stdout.isatty() else Console(width=170)
    results = run(args, console)
    console.print(report(results, args))
    console.print(compression_table(results["compression"]))
    for label in ("many", "one"):
        for side in ("solara", "ours"):
            full = results["full"][label][side]
            console.print(
                f"{side:>6}, {label} session(s), median round: {full['changes']:,.0f} value changes -> "
                f"{full['flushes']:,.0f} acknowledged flushes, {full['commands_per_flush']:.1f} server "
                "commands per flush"
            )
    warm = results["restore"]["warm"]
    if "solara_beside_before" in warm:
        console.print(
            f"Solara's warm restore beside ours: {warm['solara']:.3f} ms; beside ours before: "
            f"{warm['solara_beside_before']:.3f} ms (the same code: a gap is this machine's drift)"
        )
    console.print(load_line(results["load"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
