"""``solara-persisted doctor`` against real redis-servers on loopback ports.

The shared server is only read and written under a prefix of each test's own; a test that
reconfigures a server (eviction policy, maxmemory, ACL users) uses ``doctor_redis``, a server of
this module's own, and ``private`` puts it back afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import pytest
import redis
from click.testing import CliRunner
from pytest_redis import factories
from pytest_redis.executor import RedisExecutor
from support import free_port

from solara_persisted.address import session_address
from solara_persisted.backends.base import KEY_RINGS, SessionBudget
from solara_persisted.backends.redis import RedisBackend
from solara_persisted.cli import main
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.envelope import Codec, KeyRing
from solara_persisted.key_ring_check import KEY_RING_MAX_AGE
from solara_persisted.restore import fresh_generation

pytestmark = pytest.mark.redis

# A server of this module's own: tests change its eviction policy, maxmemory and ACL users.
doctor_redis = factories.redis_proc(executable=shutil.which("redis-server") or "redis-server", port=None)

#: For a test whose doctor stops before connecting.
UNUSED = "redis://127.0.0.1:1/0"
CHECKS = [
    "settings",
    "reachable",
    "server",
    "tls",
    "eviction",
    "memory",
    "acl",
    "key ring",
    "stored sessions",
    "ttl",
]


@pytest.fixture
def private(doctor_redis: RedisExecutor) -> Iterator[redis.Redis]:
    """An admin client of ``doctor_redis``, reconfigured freely: put back as it was afterwards."""
    client = redis.Redis(host=doctor_redis.host, port=doctor_redis.port)
    yield client
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 0)
    for user in client.acl_users():
        if user != "default":
            client.acl_deluser(user)
    client.flushall()
    client.close()


def private_url(server: RedisExecutor, userinfo: str = "") -> str:
    return f"redis://{userinfo}{server.host}:{server.port}/0"


@pytest.fixture
def shared(redis_url: str) -> Iterator[dict[str, str | None]]:
    """An instance's environment on the suite's shared server; its keys are deleted afterwards."""
    env = environment(redis_url)
    yield env
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{env['SOLARA_STATE_PREFIX']}*"):
        client.delete(key)
    client.close()


def environment(url: str, **settings: str) -> dict[str, str | None]:
    """An instance's SOLARA_STATE_* environment, a prefix of its own; the caller's SOLARA_* unset."""
    env: dict[str, str | None] = dict.fromkeys(name for name in os.environ if name.startswith("SOLARA_"))
    env.update(
        {
            "SOLARA_STATE_BACKEND": "redis",
            "SOLARA_STATE_URL": url,
            "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),
            "SOLARA_STATE_PREFIX": f"d{uuid.uuid4().hex[:8]}:",
            "SOLARA_SESSION_HTTP_ONLY": "true",
        }
    )
    env.update({f"SOLARA_STATE_{name.upper()}": value for name, value in settings.items()})
    return env


def doctor(env: Mapping[str, str | None], *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``solara-persisted doctor --json``: the exit code and the report."""
    result = CliRunner().invoke(main, ["doctor", "--json", *args], env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def settings_of(env: Mapping[str, str | None]) -> Settings:
    return Settings.from_env({name: value for name, value in env.items() if value is not None})


def publish(env: Mapping[str, str | None], secret: str, instance: str) -> None:
    """What a running instance's key-ring check writes for ``secret``'s ring."""
    settings = settings_of(env)
    backend = RedisBackend(settings)
    try:
        backend.publish_key_ring(instance, KeyRing.from_secrets([secret]).fingerprint(), KEY_RING_MAX_AGE)
    finally:
        backend.close()


def store(env: Mapping[str, str | None], **changes: Any) -> None:
    """One written session, as an instance with ``env`` (and ``changes`` to its settings) writes it."""
    engine = Engine(attrs.evolve(settings_of(env), **changes))
    try:
        assert engine.store_payloads(uuid.uuid4().hex, "cookie", {"shop.page": (Codec.JSON, 3, b"1")})
    finally:
        engine.backend.close()


def claim(env: Mapping[str, str | None]) -> None:
    """A page that read nothing yet: a takeover that claims a miss."""
    settings = settings_of(env)
    backend = RedisBackend(settings)
    try:
        address = session_address("cookie", uuid.uuid4().hex)
        backend.takeover(address, "default", settings.ttl, SessionBudget(), claim=fresh_generation())
    finally:
        backend.close()


def test_a_server_configured_right_passes(doctor_redis: RedisExecutor, private: redis.Redis) -> None:
    private.config_set("maxmemory", 1 << 30)
    env = environment(private_url(doctor_redis))
    secret = env["SOLARA_STATE_SECRET_KEYS"]
    assert secret is not None
    publish(env, secret, "web-1")
    store(env)
    claim(env)
    code, report = doctor(env)
    checks = rows(report)
    assert list(checks) == CHECKS
    assert code == 0 and report["ok"] is True
    assert {check["status"] for check in report["checks"]} == {"pass"}, report
    assert checks["server"]["found"].startswith("Redis ")
    assert checks["acl"]["found"].startswith("user default: every command the engine runs is allowed")
    assert "every live instance (1) publishes this key ring" in checks["key ring"]["found"]
    assert checks["stored sessions"]["found"] == "2 sampled: 1 ours, 1 claims; versions shop.page v3 ×1"
    assert all(check["fix"] is None for check in report["checks"])
    prefix = env["SOLARA_STATE_PREFIX"]
    assert private.keys(f"{prefix}doctor:*") == [], "the ACL probe's scratch key is deleted"
    table = CliRunner().invoke(main, ["doctor"], env=env)
    assert table.exit_code == 0, table.output
    assert "persistence will work" in table.output
    assert secret not in table.output + json.dumps(report)


def test_an_evicting_policy_fails(doctor_redis: RedisExecutor, private: redis.Redis) -> None:
    private.config_set("maxmemory-policy", "allkeys-lru")
    code, report = doctor(environment(private_url(doctor_redis)))
    eviction = rows(report)["eviction"]
    assert code == 1 and report["ok"] is False
    assert eviction["status"] == "fail"
    assert eviction["found"].startswith("maxmemory-policy allkeys-lru: Redis evicts live sessions")
    assert eviction["fix"].startswith("CONFIG SET maxmemory-policy noeviction")


@pytest.mark.parametrize(("share", "status"), [(0.85, "warn"), (0.99, "fail")])
def test_memory_near_maxmemory(
    doctor_redis: RedisExecutor, private: redis.Redis, share: float, status: str
) -> None:
    used = private.info("memory")["used_memory"]
    private.config_set("maxmemory", int(used / share))
    code, report = doctor(environment(private_url(doctor_redis)))
    memory = rows(report)["memory"]
    assert memory["status"] == status, memory
    assert "used of maxmemory" in memory["found"]
    assert memory["fix"].startswith("raise maxmemory")
    assert code == (1 if status == "fail" else 0)


def test_the_memory_warning_threshold_is_an_option(doctor_redis: RedisExecutor, private: redis.Redis) -> None:
    used = private.info("memory")["used_memory"]
    private.config_set("maxmemory", int(used / 0.5))
    env = environment(private_url(doctor_redis))
    assert rows(doctor(env)[1])["memory"]["status"] == "pass"
    assert rows(doctor(env, "--memory-warn", "40")[1])["memory"]["status"] == "warn"


def test_a_restricted_acl_user_fails_naming_the_refused_commands(
    doctor_redis: RedisExecutor, private: redis.Redis
) -> None:
    password = secrets.token_urlsafe(16)
    env = environment(private_url(doctor_redis, f"app:{password}@"))
    prefix = env["SOLARA_STATE_PREFIX"]
    # The documented grant, with EVALSHA and HDEL taken away (and EXISTS and PTTL, which the
    # takeover script runs, given).
    private.execute_command(
        "ACL", "SETUSER", "app", "on", f">{password}", f"~{prefix}*",
        "+@scripting", "-evalsha", "+@hash", "-hdel", "+del", "+pexpire", "+ping", "+config|get", "+exists", "+pttl",
    )  # fmt: skip
    code, report = doctor(env)
    checks = rows(report)
    assert code == 1
    acl = checks["acl"]
    assert acl["status"] == "fail"
    assert acl["found"] == (
        "user app: refused: evalsha, hdel; MEMORY USAGE refused inside scripts: a takeover adds up value sizes instead"
    )
    assert acl["fix"] == "ACL SETUSER app +evalsha +hdel"
    # What the engine does not need, the doctor reports as not checked, never as a failure.
    assert checks["server"]["status"] == "warn" and "INFO refused" in checks["server"]["found"]
    assert checks["stored sessions"]["status"] == "warn"
    assert private.keys(f"{prefix}doctor:*") == []
    assert password not in json.dumps(report)


def test_config_get_refused_is_only_a_warning(doctor_redis: RedisExecutor, private: redis.Redis) -> None:
    private.config_set("maxmemory", 1 << 30)
    env = environment(private_url(doctor_redis, "lean:pw-for-the-lean-user@"))
    # What the engine runs, without CONFIG GET; INFO and SCAN for the doctor's own rows.
    private.execute_command(
        "ACL", "SETUSER", "lean", "on", ">pw-for-the-lean-user", f"~{env['SOLARA_STATE_PREFIX']}*",
        "+@scripting", "+@hash", "+del", "+pexpire", "+ping", "+exists", "+pttl", "+memory|usage", "+info", "+scan",
    )  # fmt: skip
    code, report = doctor(env)
    checks = rows(report)
    assert code == 0, report
    assert checks["acl"]["status"] == "warn"
    assert "but CONFIG GET" in checks["acl"]["found"]
    assert checks["acl"]["fix"] == "optional: ACL SETUSER lean +config|get"
    assert checks["eviction"] == {
        "name": "eviction",
        "status": "pass",
        "found": "maxmemory-policy noeviction (from INFO: CONFIG GET refused)",
        "fix": None,
    }
    others = {name: check["status"] for name, check in checks.items() if name not in ("acl", "key ring")}
    assert set(others.values()) == {"pass"}, others


def test_a_user_whose_key_patterns_miss_the_prefix_is_told_which_pattern(
    doctor_redis: RedisExecutor, private: redis.Redis
) -> None:
    env = environment(private_url(doctor_redis, "other:pw-for-other-user@"))
    prefix = env["SOLARA_STATE_PREFIX"]
    private.execute_command("ACL", "SETUSER", "other", "on", ">pw-for-other-user", "~elsewhere:*", "+@all")
    code, report = doctor(env)
    acl = rows(report)["acl"]
    assert code == 1
    assert acl["status"] == "fail"
    assert f"keys under {prefix!r} are not covered" in acl["found"]
    assert acl["fix"] == f"ACL SETUSER other ~{prefix}*"


def test_an_unreachable_redis_fails_quickly() -> None:
    env = environment(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    code, report = doctor(env)
    assert time.monotonic() - started < 5
    checks = rows(report)
    assert code == 1
    assert list(checks) == ["settings", "reachable", "tls", "ttl"]
    assert checks["reachable"]["status"] == "fail"
    assert "ConnectionError" in checks["reachable"]["found"]
    assert checks["reachable"]["fix"].startswith("check SOLARA_STATE_URL")
    assert checks["ttl"]["found"].endswith("stored keys not read")


def test_another_instance_with_a_different_secret_fails_the_key_ring(
    redis_url: str, shared: dict[str, str | None]
) -> None:
    env = shared
    secret = env["SOLARA_STATE_SECRET_KEYS"]
    assert secret is not None
    publish(env, secret, "web-1")
    publish(env, secrets.token_urlsafe(32), "web-2")
    code, report = doctor(env)
    key_ring = rows(report)["key ring"]
    assert code == 1
    assert key_ring["status"] == "fail"
    assert key_ring["found"].startswith("1 of 2 instances publish a different key ring")
    assert "same SOLARA_STATE_SECRET_KEYS" in key_ring["fix"]
    client = redis.Redis.from_url(redis_url)
    assert len(client.hgetall(settings_of(env).prefix + KEY_RINGS)) == 2, "read, never written"
    client.close()


def test_stored_sessions_are_summarized(redis_url: str, shared: dict[str, str | None]) -> None:
    env = shared
    store(env)
    store(env, schema_tag="next")
    store(env, secret_keys=(secrets.token_urlsafe(32),))
    claim(env)
    client = redis.Redis.from_url(redis_url)
    client.set(f"{env['SOLARA_STATE_PREFIX']}not-ours", b"x")  # no TTL: it would live forever
    try:
        code, report = doctor(env)
    finally:
        client.close()
    checks = rows(report)
    sessions, ttl = checks["stored sessions"], checks["ttl"]
    assert sessions["status"] == "warn"
    assert sessions["found"].startswith("5 sampled: 1 ours, 1 claims; versions shop.page v3 ×3; ")
    assert (
        "1 of 2 sessions under this schema tag are signed with a key this instance lacks" in sessions["found"]
    )
    assert "1 sessions carry another schema tag; they restore fresh" in sessions["found"]
    assert "1 keys under the prefix are not solara-persisted's" in sessions["found"]
    assert ttl["status"] == "fail"
    assert "1 of 5 sampled keys have no TTL" in ttl["found"]
    assert code == 1


def test_the_sample_is_bounded(shared: dict[str, str | None]) -> None:
    env = shared
    for _ in range(3):
        store(env)
    code, report = doctor(env, "--sample", "2")
    assert code == 0
    assert rows(report)["stored sessions"]["found"].startswith("2+ sampled: 2 ours")


def test_a_ttl_within_the_orphan_cull_fails(shared: dict[str, str | None]) -> None:
    shared.update(SOLARA_STATE_TTL="5m", SOLARA_STATE_ORPHAN_CULL_TIMEOUT="10m")
    code, report = doctor(shared)
    ttl = rows(report)["ttl"]
    assert code == 1
    assert ttl["status"] == "fail"
    assert ttl["found"].startswith("SOLARA_STATE_TTL 5m does not exceed SOLARA_STATE_ORPHAN_CULL_TIMEOUT 10m")


def test_a_bad_setting_fails_with_the_servers_refusal() -> None:
    code, report = doctor(environment(UNUSED, ttl="abc"))
    assert code == 1
    assert report == {
        "ok": False,
        "checks": [
            {
                "name": "settings",
                "status": "fail",
                "found": "SOLARA_STATE_TTL: 'abc' is not a duration",
                "fix": "write a number with a unit: 300ms, 30s, 5m, 24h or 7d",
            }
        ],
    }


def test_an_unknown_setting_is_a_warning(shared: dict[str, str | None]) -> None:
    shared["SOLARA_STATE_TTLL"] = "5m"
    code, report = doctor(shared)
    settings = rows(report)["settings"]
    assert code == 0
    assert settings["status"] == "warn"
    assert (
        "SOLARA_STATE_TTLL is not a setting solara-persisted knows; did you mean SOLARA_STATE_TTL?"
        in (settings["found"])
    )


def test_persistence_off_is_one_failure() -> None:
    env = environment(UNUSED)
    env["SOLARA_STATE_BACKEND"] = None
    code, report = doctor(env)
    assert code == 1
    [settings] = report["checks"]
    assert settings["status"] == "fail"
    assert settings["found"] == "persistence is off: SOLARA_STATE_BACKEND is unset"


def test_the_memory_backend_has_nothing_more_to_check() -> None:
    env = environment("", backend="memory")
    code, report = doctor(env)
    assert code == 0
    assert [(check["name"], check["status"]) for check in report["checks"]] == [
        ("settings", "pass"),
        ("backend", "warn"),
    ]


def test_the_json_report_has_one_shape(shared: dict[str, str | None]) -> None:
    code, report = doctor(shared)
    assert set(report) == {"ok", "checks"}
    assert report["ok"] is (code == 0)
    for check in report["checks"]:
        assert set(check) == {"name", "status", "found", "fix"}
        assert check["status"] in ("pass", "warn", "fail")
        assert isinstance(check["found"], str) and check["found"]
        assert (check["fix"] is None) == (check["status"] == "pass"), check
    assert report["ok"] is all(check["status"] != "fail" for check in report["checks"])


def test_a_bad_timeout_is_refused_in_one_line() -> None:
    result = CliRunner().invoke(main, ["doctor", "--timeout", "soon"], env=environment(UNUSED))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --timeout 'soon' is not a duration. Fix: write a number with a unit: 300ms, 30s, 5m, 24h or 7d"
    ]


@pytest.mark.cluster
def test_a_cluster_is_checked_on_every_primary(redis_cluster_url: str) -> None:
    env = environment(redis_cluster_url)
    prefix = env["SOLARA_STATE_PREFIX"]
    for _ in range(3):
        store(env)
    code, report = doctor(env)
    checks = rows(report)
    assert list(checks) == CHECKS
    assert checks["eviction"]["status"] == "pass"
    assert checks["eviction"]["found"].count("maxmemory-policy noeviction") == 3, "one answer per primary"
    assert checks["acl"]["status"] == "pass"
    assert checks["stored sessions"]["found"].startswith("3 sampled: 3 ours, 0 claims")
    assert code == 0, report
    cluster = redis.RedisCluster.from_url(redis_cluster_url.replace("redis+cluster://", "redis://"))
    try:
        for key in cluster.scan_iter(match=f"{prefix}*"):
            cluster.delete(key)
    finally:
        cluster.close()
