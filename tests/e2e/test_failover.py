"""Failover in a real fleet: two `solara run` instances, a real redis-server, a loopback proxy, chromium.

The browser talks to the proxy only; "the instance dies" is a SIGKILL of its process group and
"the load balancer notices" is switching the proxy's target.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from typing import Any

import pytest
import redis
from fleet import Fleet, SolaraServer, wait_until
from playwright.sync_api import Page, expect
from pytest_redis import factories
from pytest_redis.executor import RedisExecutor

from solara_persisted.dev.proxy import LoopbackProxy

# Real server processes and a real browser on a shared 2-core machine: a failure is retried
# once or twice before it counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

# A server of its own for the outage test: stopping it must not disturb the shared one.
outage_redis = factories.redis_proc(executable=shutil.which("redis-server") or "redis-server", port=None)
RESTORE_TIMEOUT = 20_000  # ms: the client's reconnect back-off plus the restore


def state(server: SolaraServer) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "/resourcez", timeout=5) as response:
        return json.load(response)["state"]


def kernel_keys(client: redis.Redis, env: dict[str, str]) -> list[bytes]:
    return [key for key in client.keys(env["SOLARA_STATE_PREFIX"] + "*") if b"fleet:" not in key]


def count_on(page: Page, persisted: int, plain: int) -> None:
    expect(page.get_by_text(f"Persisted: {persisted}")).to_be_visible(timeout=RESTORE_TIMEOUT)
    expect(page.get_by_text(f"Plain: {plain}")).to_be_visible()


def click(page: Page, name: str, times: int) -> None:
    for _ in range(times):
        page.get_by_role("button", name=name).click()


def change_and_flush(page: Page, server: SolaraServer) -> None:
    """Three persisted clicks and two plain ones, then wait until the last write was acknowledged."""
    count_on(page, 0, 0)
    click(page, "Add persisted", 3)
    click(page, "Add plain", 2)
    count_on(page, 3, 2)
    wait_until(lambda: state(server)["sync_count"] >= 1 and "restore result" in server.logs(), "a flush on A")
    flushes = state(server)["flush_ok"]
    wait_until(lambda: state(server)["flush_ok"] == flushes and not _dirty(server), "A settled")


def _dirty(server: SolaraServer) -> bool:
    return "flush result=error" in server.logs()


def two_instances(
    fleet: Fleet, page: Page, env: dict[str, str]
) -> tuple[SolaraServer, SolaraServer, LoopbackProxy]:
    """Instances A and B on one Redis, the page on A behind the proxy, with changes written."""
    a = fleet.server("persisted_counter.py", env=env, name="a")
    b = fleet.server("persisted_counter.py", env=env, name="b")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    change_and_flush(page, a)
    return a, b, proxy


def _client(page: Page, expression: str) -> Any:
    return page.evaluate(f"solara.debug.{expression}")


def remounted_without_dialog(page: Page, status: str) -> None:
    """The client's verdict was a soft re-mount: it stays connected, and no refresh alert is up."""
    assert _client(page, "lastRestore.status") == status
    assert _client(page, "connectionStatus") == "connected"
    expect(page.get_by_text("Please refresh the page")).not_to_be_visible()


def test_sigkill_failover_restores_in_place(fleet: Fleet, page: Page, env: dict[str, str]) -> None:
    a, b, proxy = two_instances(fleet, page, env)
    url = page.url

    proxy.target = b.port
    a.kill()
    count_on(page, 3, 0)  # persisted state restored, plain state reset: no refresh dialog
    remounted_without_dialog(page, "success")
    assert page.url == url
    restored = state(b)
    assert (restored["restore_attempts"], restored["restore_success"]) == (1, 1)
    assert restored["restore_bytes_total"] > 0
    assert "restore result=success" in b.logs()
    click(page, "Add persisted", 1)  # the page is live on B
    count_on(page, 4, 0)


def test_schema_tag_bump_is_a_fresh_start_without_dialog(
    fleet: Fleet, page: Page, env: dict[str, str]
) -> None:
    a = fleet.server("persisted_counter.py", env={**env, "SOLARA_STATE_SCHEMA_TAG": "v1"}, name="a")
    b = fleet.server("persisted_counter.py", env={**env, "SOLARA_STATE_SCHEMA_TAG": "v2"}, name="b")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    change_and_flush(page, a)

    proxy.target = b.port
    a.stop()  # a rolling deploy: the old instance drains and goes
    count_on(page, 0, 0)
    remounted_without_dialog(page, "fresh-schema")
    assert state(b)["restore_schema_reset"] == 1
    assert "restore result=fresh-schema" in b.logs()


def test_tampered_state_bails_out_with_the_dialog(
    fleet: Fleet, page: Page, env: dict[str, str], redis_client: redis.Redis
) -> None:
    a, b, proxy = two_instances(fleet, page, env)
    (key,) = kernel_keys(redis_client, env)
    envelope = bytearray(redis_client.hget(key, "e2e.count"))
    envelope[-1] ^= 0xFF
    redis_client.hset(key, "e2e.count", bytes(envelope))

    proxy.target = b.port
    a.kill()
    # The client's verdict: it read the bail-out, did not re-mount and gave the kernel up; the
    # refresh alert is up (ours: Solara 1.64's vuetify-3 page renders none of its own).
    alert = page.get_by_role("alert").filter(has_text="Could not restore session. Please refresh the page.")
    expect(alert).to_be_visible(timeout=RESTORE_TIMEOUT)
    assert _client(page, "lastRestore.status") == "bailout"
    assert _client(page, "connectionStatus") != "connected"
    expect(page.get_by_text("Persisted: 3")).to_be_visible()  # nothing restored, nothing re-mounted
    assert state(b)["restore_bailout"] == 1
    # the altered field no longer matches the session's signed manifest, checked before the envelope
    assert "restore result=bailout" in b.logs() and "cause=manifest" in b.logs()
    assert kernel_keys(redis_client, env) == [], "the poisoned hash is deleted"

    alert.get_by_role("button", name="Refresh").click()  # the person follows the alert
    count_on(page, 0, 0)  # a fresh session on B that works
    expect(alert).not_to_be_visible()
    click(page, "Add persisted", 1)
    count_on(page, 1, 0)


def test_page_close_deletes_and_shutdown_leaves_state(
    fleet: Fleet, page: Page, env: dict[str, str], redis_client: redis.Redis
) -> None:
    a = fleet.server("persisted_counter.py", env=env, name="a")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    change_and_flush(page, a)
    assert len(kernel_keys(redis_client, env)) == 1
    page.close()  # a genuine tab close
    wait_until(lambda: not kernel_keys(redis_client, env), "the closed tab's state deleted")
    assert "close reason=page-close deleted=true" in a.logs()

    other = page.context.new_page()
    other.goto(proxy.url)
    change_and_flush(other, a)
    a.stop()  # server shutdown: flush and leave the state for the TTL
    assert len(kernel_keys(redis_client, env)) == 1
    assert "reason=server-shutdown deleted=false" in a.logs()


def test_a_reconnect_to_a_superseded_kernel_restores_the_newer_state(
    fleet: Fleet, page: Page, env: dict[str, str]
) -> None:
    a, b, proxy = two_instances(fleet, page, env)

    proxy.target = b.port  # broken stickiness: the next reconnect goes to B while A still lives
    proxy.drop_all()
    count_on(page, 3, 0)
    click(page, "Add persisted", 1)
    count_on(page, 4, 0)
    wait_until(lambda: state(b)["flush_ok"] >= 1, "B wrote the newer state")

    proxy.target = a.port  # and back to A, whose copy of the kernel is now stale
    proxy.drop_all()
    wait_until(lambda: state(a)["superseded_closes"] == 1, "A closed its stale copy")
    assert "close reason=superseded" in a.logs()
    wait_until(
        lambda: state(a)["restore_success"] == 1 and _client(page, "connectionStatus") == "connected",
        "the client's retry restored B's newer state on A",
        timeout=30,
    )
    remounted_without_dialog(page, "success")
    click(page, "Add persisted", 1)  # live on A, continuing from B's value
    count_on(page, 5, 0)


def test_with_force_refresh_a_bailout_reloads_into_a_working_page(
    fleet: Fleet, page: Page, env: dict[str, str], redis_client: redis.Redis
) -> None:
    # The page reloads itself on the give-up verdict instead of showing the refresh alert.
    env = {**env, "SOLARA_THEME_FORCE_REFRESH": "true"}
    a, b, proxy = two_instances(fleet, page, env)
    (key,) = kernel_keys(redis_client, env)
    redis_client.hset(key, "e2e.count", b"\x01" * 40)  # garbage where an envelope should be

    proxy.target = b.port
    a.kill()
    count_on(page, 0, 0)  # the client gave up and reloaded: a fresh page on B that works
    expect(page.get_by_role("alert")).not_to_be_visible()
    assert _client(page, "connectionStatus") == "connected"
    click(page, "Add persisted", 1)
    count_on(page, 1, 0)
    assert state(b)["restore_bailout"] == 1


def test_a_redis_outage_degrades_quietly_and_recovery_writes_everything(
    fleet: Fleet, page: Page, env: dict[str, str], outage_redis: RedisExecutor
) -> None:
    env = {
        **env,
        "SOLARA_STATE_URL": f"redis://{outage_redis.host}:{outage_redis.port}/0",
        "SOLARA_STATE_CONNECT_TIMEOUT": "0.2",  # Solara parses this one too: plain seconds
        "SOLARA_STATE_BREAKER_FAILURES": "2",
        "SOLARA_STATE_BREAKER_WINDOW": "1s",
    }
    a, b, proxy = two_instances(fleet, page, env)
    written = state(a)["flush_ok"]

    outage_redis.stop()
    try:
        click(page, "Add persisted", 2)  # the page stays live: writes are off the interaction path
        count_on(page, 5, 2)
        wait_until(lambda: state(a)["circuit_breaker"] == "open", "A's breaker opens", timeout=20)
        assert state(a)["status"] == "degraded"
        assert "breaker transition=open" in a.logs()
    finally:
        outage_redis.start()
    wait_until(lambda: state(a)["status"] == "healthy", "A recovers", timeout=20)
    wait_until(lambda: state(a)["flush_ok"] > written, "the changes of the outage written")

    proxy.target = b.port
    a.kill()
    count_on(page, 5, 0)  # what changed during the outage was written once Redis was back
