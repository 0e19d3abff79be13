"""A fleet switching from Solara's built-in engine to ours with a rolling deploy, in Chromium.

Instance A runs tests/apps/builtin_api_counter.py with E2E_SOLARA_ENGINE=1: no ``import
solara_persisted``, so Solara's own engine persists it. B and C run the same app with the import:
our engine. All share the same ``SOLARA_STATE_*`` settings, secret and redis-server.
State built on A survives A's SIGKILL on B (read from Solara's format, Solara's writer fenced out),
B writes it in our format, and the next failover (B to C) restores from ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
import solara.server.settings as solara_server_settings
import solara.state as solara_state
from fleet import Fleet, wait_until
from playwright.sync_api import Page
from test_failover import click, count_on, remounted_without_dialog, state
from test_failover_persist_true import shows

pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

APP = "builtin_api_counter.py"
UUID_LENGTH = 36


@pytest.fixture
def solara_reads(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's Solara settings as A's, so the test can decode what A's engine wrote."""
    monkeypatch.setattr(solara_server_settings.state, "secret_keys", env["SOLARA_STATE_SECRET_KEYS"])
    yield


def solara_hash(client: redis.Redis, env: dict[str, str]) -> tuple[bytes, str]:
    """The one hash in Solara's format (prefix + kernel id) and its kernel id."""
    prefix = env["SOLARA_STATE_PREFIX"].encode()
    keys = [key for key in client.keys(prefix + b"*") if len(key) - len(prefix) == UUID_LENGTH]
    assert len(keys) == 1, keys
    return keys[0], keys[0][len(prefix) :].decode()


def solara_count(client: redis.Redis, env: dict[str, str]) -> Any:
    key, kernel_id = solara_hash(client, env)
    envelope = client.hget(key, "reactive:__main__:count")
    if envelope is None:
        return None
    return solara_state.decode(envelope, kernel_id=kernel_id, field_name="reactive:__main__:count")


def our_hashes(client: redis.Redis, env: dict[str, str]) -> list[bytes]:
    """Hashes in our format: prefix + a session address (``{...}...``)."""
    return [key for key in client.keys(env["SOLARA_STATE_PREFIX"] + "{*") if b"fleet:" not in key]


def test_a_session_on_solaras_engine_fails_over_to_ours_and_stays_in_our_format(
    fleet: Fleet, page: Page, env: dict[str, str], redis_client: redis.Redis, solara_reads: None
) -> None:
    a = fleet.server(APP, env={**env, "E2E_SOLARA_ENGINE": "1"}, name="a")
    b = fleet.server(APP, env=env, name="b")
    c = fleet.server(APP, env=env, name="c")
    assert "solara-persisted active" not in a.logs() and "solara-persisted active" in b.logs()
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    count_on(page, 0, 0)
    click(page, "Add persisted", 3)
    click(page, "Add plain", 2)
    count_on(page, 3, 2)
    shows(page, "(1, 2, 3)", "['n1', 'n2', 'n3']", True)
    wait_until(lambda: solara_count(redis_client, env) == 3, "Solara's engine on A wrote the session")
    key, _ = solara_hash(redis_client, env)
    generation = int(redis_client.hget(key, "__generation__"))
    assert our_hashes(redis_client, env) == []  # A wrote nothing in our format
    url = page.url

    proxy.target = b.port
    a.kill()
    count_on(page, 3, 0)  # restored in place on B from Solara's format; the plain value reset
    shows(page, "(1, 2, 3)", "['n1', 'n2', 'n3']", True)  # the tuple a tuple again, the frozenset a frozenset
    remounted_without_dialog(page, "success")
    assert page.url == url
    on_b = state(b)
    assert (on_b["restore_attempts"], on_b["restore_success"]) == (1, 1)
    assert "restore result=success" in b.logs() and "from=solara-engine" in b.logs()
    assert "undeclared" not in b.logs()
    assert int(redis_client.hget(key, "__generation__")) == generation + 1  # A's writer is fenced out
    assert solara_count(redis_client, env) == 3  # and its hash is left as it was, to its TTL
    # Nothing changed on B yet, and B puts the session in our format at once: one hash at a session
    # address, every key (a reload refreshes TTLs, so Solara's format would otherwise linger)
    wait_until(lambda: our_hashes(redis_client, env) and state(b)["flush_ok"] == 1, "B's write of the restore")
    (ours,) = our_hashes(redis_client, env)
    fields = {name for name in redis_client.hkeys(ours) if not name.startswith(b"\x00")}
    assert fields == {b"__main__:count", b"__main__:Prefs.dark", b"e2e.history", b"e2e.clicked"}

    click(page, "Add persisted", 1)  # live on B, continuing from the restored values
    count_on(page, 4, 0)
    shows(page, "(1, 2, 3, 4)", "['n1', 'n2', 'n3', 'n4']", False)
    wait_until(lambda: state(b)["flush_ok"] >= 2, "B's write of the change")
    assert our_hashes(redis_client, env) == [ours]
    flushed = state(b)["flush_ok"]
    wait_until(lambda: state(b)["flush_ok"] == flushed and "flush result=error" not in b.logs(), "B settled")

    proxy.target = c.port
    b.kill()
    # the page showed 4 on B already: wait for C's restore and the reconnect before reading the page
    wait_until(lambda: state(c)["restore_success"] == 1, "C restored the session", 20)
    wait_until(lambda: page.evaluate("solara.debug.connectionStatus") == "connected", "reconnected to C", 20)
    count_on(page, 4, 0)  # only our format holds 4: C read ours, not Solara's (which still says 3)
    shows(page, "(1, 2, 3, 4)", "['n1', 'n2', 'n3', 'n4']", False)
    remounted_without_dialog(page, "success")
    on_c = state(c)
    assert (on_c["restore_attempts"], on_c["restore_success"]) == (1, 1)
    assert "restore result=success" in c.logs() and "from=solara-engine" not in c.logs()
    assert int(redis_client.hget(key, "__generation__")) == generation + 1  # not consulted again
    assert solara_count(redis_client, env) == 3
