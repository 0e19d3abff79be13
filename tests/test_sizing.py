"""``solara-persisted sizing`` checked against a real redis-server.

The estimate is only worth what it predicts: sessions are written with the very goldens it sized,
through a real Engine and its writer (the bytes production writes: 13-digit generations, the
shared hash's stamps), and Redis's own ``MEMORY USAGE`` and ``used_memory`` are compared with it.
Tolerances: ``MEMORY USAGE`` within 1 % (the model is Redis 7.0's, to the byte, for a hash whose
dict has finished rehashing); ``used_memory`` for 500 sessions within 10 % (the server grows and
shrinks its clients' buffers meanwhile: runs land from 4 % under to 1 % over). The listpack
verdict is checked against ``OBJECT ENCODING``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from engine_kit import Kernel

from solara_persisted.address import shared_address
from solara_persisted.cli import main
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.schema.apps import load_apps
from solara_persisted.schema.goldens import read_goldens
from solara_persisted.spec import registry

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[1]
APP = """\
from solara_persisted import persisted


@persisted(key="z.page")
def page() -> int:
    return 0


@persisted(key="z.name")
def name() -> str:
    return ""


@persisted(key="z.theme", scope="session")
def theme() -> str:
    return "light"
"""
#: One more key whose golden payload (42 bytes) makes a 78-byte envelope: over the listpack limit.
BIG = """

@persisted(key="z.bio")
def bio() -> str:
    return ""
"""
GOLDENS = {"z.page": "7", "z.name": '"Ada Lovelace"', "z.theme": '"dark"', "z.bio": json.dumps("b" * 40)}
MEMORY_USAGE_TOLERANCE = 0.01
USED_MEMORY_TOLERANCE = 0.10


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    with registry.isolated():
        yield


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SOLARA_* from the caller: each test says what the instance's environment is."""
    for name in list(os.environ):
        if name.startswith("SOLARA_"):
            monkeypatch.delenv(name)


def project(tmp_path: Path, *, big: bool = False) -> Path:
    """An app and its committed goldens (no schemas: every key has its golden)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = tmp_path / "sized_app.py"
    app.write_text(APP + (BIG if big else ""))
    for key, payload in GOLDENS.items():
        if key == "z.bio" and not big:
            continue
        (tmp_path / "goldens" / key).mkdir(parents=True, exist_ok=True)
        (tmp_path / "goldens" / key / "v1.json").write_text(payload + "\n")
    return app


def sizing(app: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``sizing --json`` for ``app`` and its goldens, as a fresh process would run it."""
    with registry.isolated():
        result = CliRunner().invoke(
            main, ["sizing", str(app), "--goldens-dir", str(app.parent / "goldens"), "--json", *args], env=env
        )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def environment(url: str) -> dict[str, str]:
    return {
        "SOLARA_STATE_BACKEND": "redis",
        "SOLARA_STATE_URL": url,
        "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),
        "SOLARA_STATE_PREFIX": f"z{uuid.uuid4().hex[:8]}:",
        "SOLARA_STATE_FLUSH_DEBOUNCE": "10ms",
        "SOLARA_SESSION_HTTP_ONLY": "true",
    }


def write_sessions(app: Path, env: dict[str, str], count: int) -> list[str]:
    """``count`` sessions holding the goldens' values, written by a real Engine's writer."""
    load_apps([str(app)])
    goldens = read_goldens(app.parent / "goldens")
    values = {spec.key: spec.type_codec.loads(goldens[spec.key][1].payload) for spec in registry.specs()}
    engine = Engine(Settings.from_env(env))
    addresses = []
    try:
        for _ in range(count):
            kernel = Kernel(engine, uuid.uuid4().hex, secrets.token_urlsafe(16))
            for key, value in values.items():
                kernel.set(key, value)
            addresses.append(kernel.address)
        assert engine.drain(30.0) == 0
    finally:
        engine.backend.close()
    return addresses


def settled(client: redis.Redis, clients: int) -> None:
    """Wait until the server has let go of the connections a closed engine had open."""
    deadline = time.monotonic() + 5.0
    while client.info("clients")["connected_clients"] > clients and time.monotonic() < deadline:
        time.sleep(0.02)


def within(estimate: float, measured: float, tolerance: float) -> bool:
    return abs(estimate - measured) <= tolerance * measured


# --------------------------------------------------------------------------- the estimate against Redis


@pytest.mark.parametrize("big", [False, True], ids=["listpack", "hashtable"])
def test_the_estimate_matches_memory_usage(
    big: bool, tmp_path: Path, redis_url: str, redis_client: redis.Redis, clean_env: None
) -> None:
    app = project(tmp_path, big=big)
    env = environment(redis_url)
    report = sizing(app, env=env)
    [address] = write_sessions(app, env, 1)
    prefix = env["SOLARA_STATE_PREFIX"]
    kernel, shared = report["hashes"]
    for estimate, key in ((kernel, prefix + address), (shared, prefix + shared_address(address))):
        measured = redis_client.memory_usage(key, samples=0)
        assert within(estimate["memory_usage"], measured, MEMORY_USAGE_TOLERANCE), (estimate, measured)
        assert estimate["encoding"] == redis_client.object("encoding", key).decode()
        assert estimate["key_bytes"] == len(key.encode())
        stored = len(key.encode()) + sum(len(f) + len(v) for f, v in redis_client.hgetall(key).items())
        assert estimate["stored"] == stored, "the bytes per session are exact: envelopes, meta, names, key"
    assert report["session"]["memory_usage"] == kernel["memory_usage"] + shared["memory_usage"]
    assert kernel["converted_by"] == (["z.bio"] if big else [])
    assert kernel["encoding"] == ("hashtable" if big else "listpack")


def test_used_memory_for_many_sessions(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, clean_env: None
) -> None:
    """In a database of its own (the server's last), so that the keyspace's bucket array is this
    population's alone."""
    app = project(tmp_path, big=True)
    last = int(redis_client.config_get("databases")["databases"]) - 1
    url = f"{redis_url.rsplit('/', 1)[0]}/{last}"
    env = environment(url)
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        sessions = 500
        report = sizing(app, "--sessions", str(sessions), env=env)
        clients = client.info("clients")["connected_clients"]
        # A first population, flushed: what one run allocates once (scripts, the server's own
        # first-time buffers) is not the sessions' memory.
        write_sessions(app, env, sessions)
        client.flushdb()
        settled(client, clients)  # the warm-up's connections and their buffers are freed
        before = client.info("memory")["used_memory"]
        write_sessions(app, env, sessions)
        measured = client.info("memory")["used_memory"] - before
        row = next(row for row in report["sessions"] if row["sessions"] == sessions)
        assert client.dbsize() == 2 * sessions
        assert within(row["used_memory"], measured, USED_MEMORY_TOLERANCE), (row, measured)
        assert row["stored"] == sessions * report["session"]["stored"]
    finally:
        client.flushdb()
        client.close()


# --------------------------------------------------------------------------- the listpack verdict


def test_a_golden_over_the_listpack_limit_flips_the_verdict(tmp_path: Path, clean_env: None) -> None:
    small = sizing(project(tmp_path / "small"))
    assert [h["encoding"] for h in small["hashes"]] == ["listpack", "listpack"]
    assert not any(key["over_listpack_value"] for key in small["keys"])
    big = sizing(project(tmp_path / "big", big=True))
    kernel = big["hashes"][0]
    assert (kernel["encoding"], kernel["converted_by"]) == ("hashtable", ["z.bio"])
    bio = next(key for key in big["keys"] if key["key"] == "z.bio")
    assert (bio["payload"], bio["envelope"], bio["over_listpack_value"]) == (42, 78, True)
    assert kernel["memory_usage"] > 1.5 * small["hashes"][0]["memory_usage"], "a hash table costs more"
    assert big["limits"]["source"] == "Redis's defaults, no Redis configured"


def test_the_limits_are_read_from_redis(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, clean_env: None
) -> None:
    app = project(tmp_path, big=True)
    env = environment(redis_url)
    saved = redis_client.config_get("hash-max-listpack-value")["hash-max-listpack-value"]
    redis_client.config_set("hash-max-listpack-value", 128)
    try:
        report = sizing(app, env=env)
        assert report["limits"]["hash-max-listpack-value"] == 128
        assert report["limits"]["hash-max-listpack-entries"] == 512, "Redis's default, read"
        assert report["limits"]["source"].startswith("CONFIG GET at redis://")
        assert report["limits"]["server"].startswith("Redis ")
        assert report["hashes"][0]["encoding"] == "listpack", "78 bytes fit a limit of 128"
        [address] = write_sessions(app, env, 1)
        key = env["SOLARA_STATE_PREFIX"] + address
        assert redis_client.object("encoding", key) == b"listpack"
        assert within(report["hashes"][0]["memory_usage"], redis_client.memory_usage(key, samples=0), 0.01)
    finally:
        redis_client.config_set("hash-max-listpack-value", saved)
    unreachable = sizing(app, env={**env, "SOLARA_STATE_URL": "redis://127.0.0.1:1/0"})
    assert unreachable["limits"]["hash-max-listpack-value"] == 64
    assert unreachable["limits"]["source"].startswith("Redis's defaults, redis://127.0.0.1:1/0 not reached")


# --------------------------------------------------------------------------- the command


def test_the_example_shop_is_the_default_target(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["sizing", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [key["key"] for key in report["keys"]] == [
        "shop.checkout",
        "shop.currency",
        "shop.filters",
        "shop.selected",
    ]
    assert [h["kind"] for h in report["hashes"]] == ["kernel", "shared"]
    assert report["prefix"] == "solara:" and report["hashes"][0]["key_bytes"] == len("solara:") + 22
    # no goldens are committed for the shop's keys: each payload is the schema's last example, said so
    assert not any(key["golden"] for key in report["keys"])
    assert all(key["source"].startswith("the last example of examples/schemas/") for key in report["keys"])
    assert any(note.startswith("estimate: shop.checkout, shop.currency") for note in report["notes"])
    assert [row["sessions"] for row in report["sessions"]] == [1_000, 10_000, 100_000, 1_000_000]
    table = CliRunner().invoke(main, ["sizing"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "apps: examples/shop_app.py (from [tool.solara-persisted] in pyproject.toml)" in table.output
    for shown in ("one session's values", "kernel hash solara:{S}K", "1,000,000", "used_memory (estimate)"):
        assert shown in table.output, shown
    assert "estimate: MEMORY USAGE and used_memory are modelled on Redis 7.0" in " ".join(
        table.output.split()
    )


def test_sessions_adds_its_row_and_a_family_counts_once(tmp_path: Path, clean_env: None) -> None:
    app = project(tmp_path)
    with app.open("a") as file:
        file.write(
            '\nfrom solara_persisted import persisted_family\ndraft = persisted_family("z.draft:{doc}", type=str, default="")\n'
        )
    report = sizing(app, "--sessions", "2500")
    assert [row["sessions"] for row in report["sessions"]] == [1_000, 2_500, 10_000, 100_000, 1_000_000]
    assert report["sessions"][1]["stored"] == 2500 * report["session"]["stored"]
    draft = next(key for key in report["keys"] if key["key"] == "z.draft:{doc}")
    assert (draft["field"], draft["golden"], draft["source"]) == (
        "z.draft:golden",
        False,
        "the default (no golden)",
    )
    assert any("a family (z.draft:{doc}) counts once" in note for note in report["notes"])


def test_refusals_are_one_line(tmp_path: Path, clean_env: None) -> None:
    missing = CliRunner().invoke(main, ["sizing", str(tmp_path / "nope.py")])
    assert missing.exit_code == 2 and missing.stderr.startswith("Error: ") and ". Fix: " in missing.stderr
    bad = CliRunner().invoke(main, ["sizing", str(project(tmp_path))], env={"SOLARA_STATE_TTL": "soon"})
    assert bad.exit_code == 2
    assert bad.stderr.startswith("Error: SOLARA_STATE_TTL: "), bad.stderr
    assert len(bad.stderr.splitlines()) == 1
