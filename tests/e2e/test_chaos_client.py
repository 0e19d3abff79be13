"""The chaos checker's simulated users (bench/chaos_client.py) against real `solara run` instances.

The checker can only judge histories the users record truthfully, so the client is tested on its
own first: every command is acknowledged on a healthy instance, a reconnect to a live kernel
reads the page's state back (comm_info_request + request_state, as Solara's browser client
does), and after a SIGKILL each user's restore on the next instance shows exactly what it had
acknowledged before the write-behind debounce passed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType
from typing import Any

import pytest
from fleet import REPO, Fleet

# Real server processes on a shared 2-core machine: a failure is retried once or twice before
# it counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

APP = REPO / "bench" / "chaos_app.py"
USERS = 5
DEBOUNCE = "200ms"
SETTLE = 1.0  # seconds after the last ack: well past the debounce, so the write-behind has flushed


def _load_client() -> ModuleType:
    """bench/ is scripts, not a package: load the client by path, once."""
    name = "chaos_client"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "chaos_client.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


chaos = _load_client()
Record = dict[str, Any]  # the client's records are plain dicts (chaos_client.Record documents the keys)


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll on the loop (the users keep running) until ``condition``; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(0.05)


def of(history: Sequence[Record], uid: int, kind: str, after: float = 0.0) -> list[Record]:
    return [r for r in history if r["user"] == uid and r["kind"] == kind and r["t"] > after]


def last_ack(history: Sequence[Record], uid: int) -> Record:
    return of(history, uid, "ack")[-1]


async def settle(users: list[Any], history: list[Record]) -> None:
    """Pause every user, wait until none has a command in flight, then past the debounce."""
    await until(lambda: all(len(of(history, u.uid, "ack")) >= 2 for u in users), "two acks per user")
    for user in users:
        user.paused = True
    await until(lambda: all(u.acked == u.n for u in users), "the commands in flight acknowledged")
    await asyncio.sleep(SETTLE)


def scenario(body: Callable[[list[Any], list[Record]], Awaitable[None]], url: str, seed: int) -> list[Record]:
    """Run ``USERS`` users against ``url`` while ``body`` drives the fleet; the history."""
    history: list[Record] = []

    async def main() -> None:
        users = chaos.make_users(url, USERS, seed, history)
        tasks = [asyncio.ensure_future(user.run(time.monotonic() + 60)) for user in users]
        try:
            await body(users, history)
        finally:
            for user in users:
                user.stop()
            done, pending = await asyncio.wait(tasks, timeout=15)
            for task in pending:
                task.cancel()
            assert not pending, "a user did not stop"
            for task in done:
                task.result()

    asyncio.run(main())
    return history


def assert_acks_match_sends(history: Sequence[Record], uid: int, start: dict[str, str]) -> None:
    """Each ack shows the user's own values: ``start`` plus every command it sent, in order."""
    expected = dict(start)
    sends = {r["seq"]: r for r in of(history, uid, "send")}
    for ack in of(history, uid, "ack"):
        expected.update(sends[ack["seq"]]["set"])
        assert dict(ack["values"]) == expected, (uid, ack)


def test_every_command_is_acknowledged_and_a_first_visit_misses(fleet: Fleet, env: dict[str, str]) -> None:
    server = fleet.server(APP, env=env, name="a")
    history: list[Record] = []
    asyncio.run(chaos.run_users(server.url, USERS, 1, 3.0, history))

    restores = [r for r in history if r["kind"] == "restore"]
    assert sorted(r["user"] for r in restores) == list(range(USERS)), chaos.summary(history)
    for restore in restores:
        assert (restore["result"], restore["last_restore"], restore["live"]) == ("miss", "miss", False), (
            restore
        )
        assert dict(restore["values"]) == {"a": "", "b": "", "c": ""} and restore["seq"] == 0, restore
    assert not [r for r in history if r["kind"] in ("timeout", "disconnect", "error")], chaos.summary(history)
    for uid in range(USERS):
        sends, acks = of(history, uid, "send"), of(history, uid, "ack")
        assert sends, f"user {uid} sent nothing"
        assert [s["seq"] for s in sends] == [a["seq"] for a in acks] == list(range(1, len(sends) + 1))
        assert all(0 < a["latency_ms"] < 5000 for a in acks)
        assert_acks_match_sends(history, uid, {"a": "", "b": "", "c": ""})
    several = [s for s in history if s["kind"] == "send" and len(s["set"]) > 1]
    assert several, "no command set several keys together"


def test_a_reconnect_to_a_live_kernel_reads_the_page_state_back(fleet: Fleet, env: dict[str, str]) -> None:
    server = fleet.server(APP, env={**env, "CHAOS_INSTANCE": "A"}, name="a")
    proxy = fleet.proxy(server)
    marks: dict[str, Any] = {}

    async def body(users: list[Any], history: list[Record]) -> None:
        await settle(users, history)
        marks["before"] = {u.uid: last_ack(history, u.uid) for u in users}
        marks["drop"] = time.monotonic()
        assert await asyncio.to_thread(proxy.drop_all) == USERS
        await until(
            lambda: all(of(history, u.uid, "restore", marks["drop"]) for u in users),
            "every user reconnected",
        )

    history = scenario(body, proxy.url, seed=2)
    for uid, ack in marks["before"].items():
        assert of(history, uid, "disconnect", marks["drop"])
        restore = of(history, uid, "restore", marks["drop"])[0]
        assert restore["live"] is True and restore["instance"] == "A", restore
        assert (dict(restore["values"]), restore["seq"]) == (dict(ack["values"]), ack["seq"]), (restore, ack)
        assert restore["generation"] == ack["generation"]


def test_after_a_sigkill_each_user_restores_its_own_acknowledged_values(
    fleet: Fleet, env: dict[str, str]
) -> None:
    env = {**env, "SOLARA_STATE_FLUSH_DEBOUNCE": DEBOUNCE}
    a = fleet.server(APP, env={**env, "CHAOS_INSTANCE": "A"}, name="a")
    proxy = fleet.proxy(a)
    marks: dict[str, Any] = {}

    async def body(users: list[Any], history: list[Record]) -> None:
        await settle(users, history)
        marks["before"] = {u.uid: last_ack(history, u.uid) for u in users}
        marks["kill"] = time.monotonic()
        proxy.target = None  # the balancer marks A dead; reconnects are refused until B is up
        await asyncio.to_thread(a.kill)
        b = await asyncio.to_thread(fleet.server, APP, env={**env, "CHAOS_INSTANCE": "B"}, name="b")
        proxy.target = b.port
        await until(
            lambda: all(of(history, u.uid, "restore", marks["kill"]) for u in users),
            "every user restored on B",
            timeout=30,
        )
        marks["resume"] = time.monotonic()
        for user in users:
            user.paused = False
        await until(
            lambda: all(of(history, u.uid, "ack", marks["resume"]) for u in users),
            "every user acknowledged on B",
        )

    history = scenario(body, proxy.url, seed=3)
    kill, resume = marks["kill"], marks["resume"]
    for uid, ack in marks["before"].items():
        assert of(history, uid, "disconnect", kill)
        restore = of(history, uid, "restore", kill)[0]
        assert (restore["live"], restore["instance"]) == (False, "B"), restore
        assert (restore["result"], restore["last_restore"]) == ("success", "success"), restore
        assert (dict(restore["values"]), restore["seq"]) == (dict(ack["values"]), ack["seq"]), (restore, ack)
        assert all(r["instance"] == "B" for r in of(history, uid, "ack", resume)), uid
        assert_acks_match_sends(history, uid, {"a": "", "b": "", "c": ""})
