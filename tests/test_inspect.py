"""``solara-persisted inspect`` against the suite's real redis-server, on sessions a real Engine wrote.

Each test gets a prefix of its own and a known population: 30 sessions (28 stored as payloads,
two through the writer, which also write the two browser sessions' shared hashes), 5 claims, the
fleet's key-ring hash (skipped) and one key without a TTL planted by hand. The census is checked
against what Redis itself says of each key (HGETALL, MEMORY USAGE, PTTL); one session is then
verified, decoded, tampered with and looked up by a wrong address.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
from click.testing import CliRunner, Result
from engine_kit import Kernel

from solara_persisted.address import session_address, shared_address
from solara_persisted.backends.base import SessionBudget
from solara_persisted.backends.redis import RedisBackend
from solara_persisted.cli import main
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.envelope import Codec
from solara_persisted.restore import fresh_generation
from solara_persisted.schema.apps import load_apps
from solara_persisted.spec import registry

pytestmark = pytest.mark.redis

APP = """\
import attrs

from solara_persisted import persisted
from solara_persisted.migrations import AddField, migration


@attrs.frozen
class Cart:
    items: tuple[str, ...] = ()
    coupon: str | None = None


@persisted(key="i.note")
def note() -> str:
    return ""


@persisted(key="i.cart", version=2)
def cart() -> Cart:
    return Cart()


migration(cart, from_version=1, ops=[AddField("coupon", None)])


@persisted(key="i.theme", scope="session")
def theme() -> str:
    return "light"
"""
TTL = 3600.0
STORED, WRITTEN, CLAIMS = 28, 2, 5
#: A value that must never appear in a report unless --show-values asks for it.
SECRET_NOTE = "call-me-at-555-0199"


@attrs.frozen
class Population:
    """What the test wrote: the environment, addresses in order of size, and the odd ones out."""

    env: dict[str, str]
    prefix: str
    stored: list[str]  # by payload size, smallest first
    written: list[str]  # written by the writer, with a shared value each
    claims: list[str]
    app: Path


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    with registry.isolated():
        yield


@pytest.fixture
def env(redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The server's environment with a prefix of this test's own; the caller's SOLARA_* unset; cwd empty."""
    monkeypatch.chdir(tmp_path)  # no pyproject.toml: no project apps unless --app
    values = {
        "SOLARA_STATE_BACKEND": "redis",
        "SOLARA_STATE_URL": redis_url,
        "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),
        "SOLARA_STATE_PREFIX": f"i{uuid.uuid4().hex[:8]}:",
        "SOLARA_STATE_TTL": "1h",
        "SOLARA_STATE_FLUSH_DEBOUNCE": "10ms",
        "SOLARA_SESSION_HTTP_ONLY": "true",
    }
    for name in list(os.environ):
        if name.startswith("SOLARA_"):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def population(env: dict[str, str], redis_client: redis.Redis, tmp_path: Path) -> Population:
    app = tmp_path / "inspect_app.py"
    app.write_text(APP)
    load_apps([str(app)])
    settings = Settings.from_env(env)
    engine = Engine(settings)
    stored = []
    try:
        for i in range(STORED):
            kernel_id, cookie = uuid.uuid4().hex, secrets.token_urlsafe(16)
            payloads = {
                "i.note": (Codec.JSON, 1, json.dumps("n" * (10 * i + 10)).encode()),
                "i.cart": (Codec.JSON, 1 if i < 10 else 2, b'{"items":["a","b"]}'),
            }
            assert engine.store_payloads(kernel_id, cookie, payloads)
            stored.append(session_address(cookie, kernel_id))
        written = []
        for theme in ("dark", "sepia"):
            kernel = Kernel(engine, uuid.uuid4().hex, secrets.token_urlsafe(16))
            kernel.set("i.note", SECRET_NOTE)
            kernel.set("i.cart", registry.get("i.cart").default())  # type: ignore[union-attr]
            kernel.set("i.theme", theme)
            written.append(kernel.address)
        assert engine.drain(5.0) == 0
    finally:
        engine.backend.close()
    backend = RedisBackend(settings)
    claims = []
    try:
        for _ in range(CLAIMS):
            address = session_address("cookie", uuid.uuid4().hex)
            backend.takeover(address, "default", settings.ttl, SessionBudget(), claim=fresh_generation())
            claims.append(address)
        backend.publish_key_ring("web-1", "0" * 16, 90.0)  # the fleet's hash: not a session, skipped
    finally:
        backend.close()
    redis_client.set(f"{settings.prefix}stray", b"x")  # planted by hand: no TTL
    return Population(env, settings.prefix, stored, written, claims, app)


def inspect(*args: str) -> Result:
    """One run, on a terminal wide enough that no table cell is folded."""
    return CliRunner().invoke(main, ["inspect", *args], env={"COLUMNS": "200"})


def census(*args: str) -> dict[str, Any]:
    result = inspect("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def nearest_rank(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(percent / 100 * len(ordered)) - 1]


def stored_bytes(client: redis.Redis, key: str) -> int:
    """What the report calls a hash's bytes: its key, field names and values."""
    return len(key.encode()) + sum(len(f) + len(v) for f, v in client.hgetall(key).items())


# --------------------------------------------------------------------------- the census


def test_a_known_population_is_counted_and_sized(population: Population, redis_client: redis.Redis) -> None:
    report = census()
    assert report["counts"] == {"sessions": STORED + WRITTEN, "claims": CLAIMS, "shared": 2, "other": 1}
    assert (report["keys_read"], report["truncated"], report["limit"]) == (38, False, 100_000)
    assert report["prefix"] == population.prefix and report["memory_usage"] is True
    prefix = population.prefix
    sessions = [prefix + a for a in population.stored + population.written]
    byte_sizes = [stored_bytes(redis_client, key) for key in sessions]
    memory = [redis_client.memory_usage(key, samples=0) for key in sessions]
    for measure, values in (("bytes", byte_sizes), ("memory", memory)):
        row = report["sizes"]["sessions"][measure]
        assert row == {
            "count": 30,
            "p50": nearest_rank(values, 50),
            "p90": nearest_rank(values, 90),
            "p99": nearest_rank(values, 99),
            "min": min(values),
            "max": max(values),
        }, measure
    shared = [prefix + shared_address(a) for a in population.written]
    assert report["sizes"]["shared"]["bytes"]["max"] == max(stored_bytes(redis_client, k) for k in shared)
    assert report["sizes"]["shared"]["memory"]["count"] == 2


def test_ttls_are_summarised_and_a_key_without_one_is_named(population: Population) -> None:
    ttl = census()["ttl"]
    assert ttl["without_ttl"] == 1 and ttl["without_ttl_keys"] == ["stray"]
    seconds = ttl["seconds"]
    assert seconds["count"] == 37, "every key read but the one without a TTL"
    assert TTL - 120 < seconds["min"] <= seconds["p50"] <= seconds["p90"] <= seconds["max"] <= TTL


def test_the_largest_sessions_are_listed_by_address(
    population: Population, redis_client: redis.Redis
) -> None:
    largest = census()["largest"]
    assert [row["address"] for row in largest] == population.stored[::-1][:10], "the biggest notes first"
    top = largest[0]
    key = population.prefix + top["address"]
    assert top["memory"] == redis_client.memory_usage(key, samples=0)
    assert top["bytes"] == stored_bytes(redis_client, key)
    assert top["keys"] == 2 and 0 < top["ttl"] <= TTL
    assert set(top) == {"address", "bytes", "memory", "keys", "ttl"}, "no kernel id, no cookie"


def test_key_labels_are_hashed_unless_show_keys(population: Population) -> None:
    hashed = inspect("--json")
    assert hashed.exit_code == 0
    report = json.loads(hashed.stdout)
    assert report["labels"] == "hashed"
    assert all(row["key"].startswith("sha256:") for row in report["keys"])
    for name in ("i.note", "i.cart", "i.theme"):
        assert name not in hashed.stdout
    table = inspect()
    assert table.exit_code == 0 and "sha256:" in table.output
    assert "i.note" not in table.output and "i.cart" not in table.output
    shown = census("--show-keys")
    assert shown["labels"] == "shown"
    rows = {row["key"]: row for row in shown["keys"]}
    assert rows["i.note"]["versions"] == {"1": 30}
    assert rows["i.cart"]["versions"] == {"1": 10, "2": 20}
    assert rows["i.theme"]["versions"] == {"1": 2}
    assert (rows["i.note"]["count"], rows["i.cart"]["count"], rows["i.theme"]["count"]) == (30, 30, 2)
    note = rows["i.note"]
    assert note["mean"] == round(note["total"] / note["count"], 1)
    assert note["max"] == 36 + len(json.dumps("n" * 280)), "the biggest note's envelope"
    assert [row["count"] for row in report["keys"]] == [row["count"] for row in shown["keys"]]


def test_the_json_document_has_a_fixed_shape(population: Population) -> None:
    report = census()
    assert list(report) == [
        "prefix",
        "limit",
        "keys_read",
        "truncated",
        "counts",
        "memory_usage",
        "sizes",
        "ttl",
        "largest",
        "labels",
        "keys",
    ]
    assert set(report["sizes"]) == {"sessions", "shared"}
    assert set(report["sizes"]["sessions"]) == {"bytes", "memory"}
    assert set(report["ttl"]) == {"seconds", "without_ttl", "without_ttl_keys"}
    assert {"key", "count", "total", "mean", "max", "versions"} == set(report["keys"][0])


def test_limit_bounds_the_keys_read(population: Population) -> None:
    report = census("--limit", "10")
    assert (report["keys_read"], report["truncated"]) == (10, True)
    assert sum(report["counts"].values()) == 10


def test_the_table_report(population: Population) -> None:
    result = inspect()
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"38 keys under '{population.prefix}'" in text
    assert "30 sessions, 5 claims, 2 shared, 1 other" in text
    assert "1 key without a TTL" in text and "stray" in text
    assert population.stored[-1] in text, "the largest session, by address"
    assert "largest sessions" in text and "bytes per persisted key" in text
    assert SECRET_NOTE not in result.output


def test_without_memory_usage_sizes_come_from_lengths(
    population: Population, redis_client: redis.Redis
) -> None:
    user, password = f"inspect-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    redis_client.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all", "-memory"]
    )
    try:
        url = population.env["SOLARA_STATE_URL"].replace("redis://", f"redis://{user}:{password}@")
        result = CliRunner().invoke(main, ["inspect", "--json"], env={"SOLARA_STATE_URL": url})
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["memory_usage"] is False
        assert report["sizes"]["sessions"]["memory"] is None
        assert report["sizes"]["sessions"]["bytes"]["count"] == 30
        assert all(row["memory"] is None for row in report["largest"])
        assert password not in result.output
    finally:
        redis_client.acl_deluser(user)


def test_inspect_refuses_without_redis(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["inspect"], env={"SOLARA_STATE_BACKEND": "memory"})
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: inspect reads a Redis, and SOLARA_STATE_BACKEND is memory. Fix: ")
    unreachable = CliRunner().invoke(main, ["inspect"], env={"SOLARA_STATE_URL": "redis://127.0.0.1:1/0"})
    assert unreachable.exit_code == 2 and len(unreachable.stderr.splitlines()) == 1, unreachable.stderr


# --------------------------------------------------------------------------- one session


def test_a_session_verifies_and_its_values_stay_redacted(population: Population) -> None:
    address = population.written[0]
    result = inspect(address, "--app", str(population.app))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "manifest verified" in text and text.endswith("verified")
    assert SECRET_NOTE not in result.output and "dark" not in result.output
    assert "Cart" in text and "str" in text
    document = json.loads(inspect(address, "--app", str(population.app), "--json").stdout)
    assert document["ok"] is True and document["problem"] is None
    values = {value["key"]: value for value in document["values"]}
    assert set(values) == {"i.note", "i.cart", "i.theme"}
    assert {value["status"] for value in values.values()} == {"ok"}
    assert values["i.theme"]["scope"] == "session"
    assert values["i.note"]["type"] == "str" and values["i.note"]["value"] is None
    assert values["i.note"]["bytes"] == 36 + len(json.dumps(SECRET_NOTE))
    assert SECRET_NOTE not in json.dumps(document)


def test_show_values_shows_them(population: Population) -> None:
    address = population.written[1]
    result = inspect(address, "--app", str(population.app), "--show-values")
    assert result.exit_code == 0, result.output
    assert SECRET_NOTE in result.output and '"sepia"' in result.output
    document = json.loads(inspect(address, "--app", str(population.app), "--show-values", "--json").stdout)
    values = {value["key"]: value["value"] for value in document["values"]}
    assert values == {"i.note": SECRET_NOTE, "i.cart": {"items": [], "coupon": None}, "i.theme": "sepia"}


def test_an_older_version_is_migrated_and_without_an_app_values_stay_undecoded(
    population: Population,
) -> None:
    address = population.stored[0]
    document = json.loads(inspect(address, "--app", str(population.app), "--json").stdout)
    cart = next(value for value in document["values"] if value["key"] == "i.cart")
    assert (cart["status"], cart["version"], cart["note"]) == ("ok", 1, "migrated from v1 to v2")
    bare = inspect(address, "--json")  # no --app, and no pyproject.toml in the working directory
    assert bare.exit_code == 0, bare.output
    values = {value["key"]: value for value in json.loads(bare.stdout)["values"]}
    assert {value["status"] for value in values.values()} == {"verified"}
    assert (values["i.cart"]["codec"], values["i.cart"]["version"]) == ("json", 1)
    assert values["i.cart"]["value"] is None and values["i.cart"]["type"] is None
    raw = json.loads(inspect(address, "--show-values", "--json").stdout)
    assert {value["key"]: value["value"] for value in raw["values"]}["i.cart"] == '{"items":["a","b"]}'


def test_a_tampered_value_fails_verification(population: Population, redis_client: redis.Redis) -> None:
    address = population.written[0]
    key = population.prefix + address
    envelope = bytearray(redis_client.hget(key, "i.note") or b"")
    envelope[6] ^= 0x01  # a payload byte: the manifest (over envelope tags) still matches
    redis_client.hset(key, "i.note", bytes(envelope))
    result = inspect(address, "--app", str(population.app))
    assert result.exit_code == 1, result.output
    last = " ".join(result.output.split("verification failed: ", 1)[1].split())
    assert last.startswith("stored value of key 'i.note' matches none of the 1 key(s)")
    assert SECRET_NOTE[1:] not in result.output
    document = json.loads(inspect(address, "--app", str(population.app), "--json").stdout)
    assert document["ok"] is False and "'i.note'" in document["problem"]
    statuses = {value["key"]: value["status"] for value in document["values"]}
    assert statuses == {"i.note": "fail", "i.cart": "ok", "i.theme": "ok"}


def test_a_removed_field_fails_the_manifest(population: Population, redis_client: redis.Redis) -> None:
    address = population.stored[3]
    redis_client.hdel(population.prefix + address, "i.cart")
    result = inspect(address, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["problem"].startswith("the manifest does not sign the stored fields")


def test_another_fleets_secret_fails(population: Population) -> None:
    address = population.stored[0]
    result = CliRunner().invoke(
        main, ["inspect", address], env={"SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32)}
    )
    assert result.exit_code == 1
    assert "which SOLARA_STATE_SECRET_KEYS lacks" in " ".join(result.output.split())


def test_a_wrong_or_unknown_address_is_one_line(population: Population) -> None:
    unknown = session_address("nobody", uuid.uuid4().hex)
    for text, problem in (
        (unknown, f"Error: no session is stored at '{population.prefix}{unknown}'. Fix: "),
        ("42", "Error: '42' is not a session address. Fix: "),
        ("{abc}def", "Error: '{abc}def' is not a session address. Fix: "),
    ):
        result = inspect(text)
        assert result.exit_code == 2, result.output
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(problem), result.stderr


def test_a_shared_hash_a_claim_and_a_prefixed_key(population: Population) -> None:
    shared = shared_address(population.written[0])
    document = json.loads(inspect(shared, "--app", str(population.app), "--json").stdout)
    assert document["ok"] is True
    assert [(v["key"], v["status"]) for v in document["values"]] == [("i.theme", "ok")]
    claim = json.loads(inspect(population.claims[0], "--json").stdout)
    assert claim["ok"] is True and claim["found"].startswith("a claim, nothing written yet")
    prefixed = inspect(population.prefix + population.stored[0], "--json")
    assert prefixed.exit_code == 0 and json.loads(prefixed.stdout)["address"] == population.stored[0]


def test_session_options_need_an_address(env: dict[str, str]) -> None:
    result = inspect("--show-values")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --show-values and --app read one session. Fix: pass its ADDRESS")


@pytest.mark.cluster
def test_a_cluster_is_read_on_every_primary(redis_cluster_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"c{uuid.uuid4().hex[:8]}:"
    secret = secrets.token_urlsafe(32)
    settings = Settings(
        backend="redis", url=redis_cluster_url, secret_keys=(secret,), prefix=prefix, session_http_only=True
    )
    engine = Engine(settings)
    try:
        for i in range(12):
            payloads = {"i.note": (Codec.JSON, 1, json.dumps("x" * i).encode())}
            assert engine.store_payloads(uuid.uuid4().hex, f"cookie-{i}", payloads)
    finally:
        engine.backend.close()
    environment = {
        "SOLARA_STATE_BACKEND": "redis",
        "SOLARA_STATE_URL": redis_cluster_url,
        "SOLARA_STATE_SECRET_KEYS": secret,
        "SOLARA_STATE_PREFIX": prefix,
    }
    cluster = redis.RedisCluster.from_url(redis_cluster_url.replace("redis+cluster://", "redis://"))
    try:
        result = CliRunner().invoke(main, ["inspect", "--json", "--show-keys"], env=environment)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["counts"]["sessions"] == 12
        assert report["keys"][0]["count"] == 12
        one = report["largest"][0]["address"]
        verified = CliRunner().invoke(main, ["inspect", one, "--json"], env=environment)
        assert verified.exit_code == 0, verified.output
    finally:
        for key in cluster.scan_iter(match=f"{prefix}*"):
            cluster.delete(key)
        cluster.close()
