"""Fencing in a real fleet: a paused instance that wakes up, a stranger's cookie, a silent connection.

Real `solara run` processes on one redis-server, the loopback proxy and chromium, as in
test_failover.py. What is checked is what the store holds, read straight from Redis (generation,
TTL and the decoded value of a session's hash, found by its cookie and kernel id) next to what
the page shows and what each instance logs, so a lost update or a takeover cannot hide behind a
page that merely looks right.

The instances pause (SIGSTOP inside a debounce window) behind a half-open proxy link, so the
paused one never sees its client go and wakes up believing it still serves the page.
"""

from __future__ import annotations

import re
import secrets
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from counter_page import (
    APP,
    COOKIE,
    click,
    cookie_of,
    count_on,
    debug,
    first_message,
    kernel_field,
    kernel_id_of,
    kernels,
    lines,
    remounted,
    state,
    websocket_url,
)
from fleet import Fleet, wait_until
from playwright.sync_api import Browser, Page
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from solara_persisted.address import session_address
from solara_persisted.backends.base import META_FIELD, Meta
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.envelope import KeyRing, open_envelope
from solara_persisted.spec import persisted, registry

# Real server processes and a real browser on a shared 2-core machine: a failure is retried
# once or twice before it counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

FIELD = "e2e.count"  # the app's persisted key
FLUSH_TIMEOUT = 15.0  # s: a debounce of a few seconds plus a loaded machine
DEBOUNCE = 3.0  # s: the window in which the paused instance holds an unwritten change


class Store:
    """A session's hash as Redis holds it, read without a takeover (nothing is bumped or refreshed)."""

    def __init__(self, client: redis.Redis, env: dict[str, str], loads: Any) -> None:
        self.client = client
        self.prefix = env["SOLARA_STATE_PREFIX"]
        self.ring = KeyRing.from_secrets(env["SOLARA_STATE_SECRET_KEYS"].split(","))
        self.loads = loads

    def key(self, cookie: str, kernel_id: str) -> str:
        return self.prefix + session_address(cookie, kernel_id)

    def read(self, cookie: str, kernel_id: str) -> tuple[int, int | None] | None:
        """(generation, persisted count) of that cookie's hash for that kernel; None when there is
        none; the count is None for a claim (a takeover that found nothing, before any write)."""
        address = session_address(cookie, kernel_id)
        stored = self.client.hgetall(self.prefix + address)
        if not stored:
            return None
        generation = Meta.unpack(stored[META_FIELD.encode()]).generation
        if FIELD.encode() not in stored:
            return generation, None
        opened = open_envelope(self.ring, stored[FIELD.encode()], address=address, field=FIELD)
        return generation, self.loads(opened.payload)

    def ttl_ms(self, cookie: str, kernel_id: str) -> int:
        return int(self.client.pttl(self.key(cookie, kernel_id)))

    def wait_for(self, cookie: str, kernel_id: str, value: int, what: str) -> int:
        """Wait until the hash holds `value`; its generation."""
        wait_until(lambda: self._value(cookie, kernel_id) == value, what, timeout=FLUSH_TIMEOUT)
        stored = self.read(cookie, kernel_id)
        assert stored is not None
        return stored[0]

    def _value(self, cookie: str, kernel_id: str) -> int | None:
        stored = self.read(cookie, kernel_id)
        return None if stored is None else stored[1]


@pytest.fixture
def store(redis_client: redis.Redis, env: dict[str, str]) -> Iterator[Store]:
    """Reads the fleet's hashes; the app's key is declared here too, to decode what it stores."""
    with registry.isolated():

        @persisted(key=FIELD)
        def count() -> int:
            return 0

        spec = registry.resolve(FIELD)
        assert spec is not None
        yield Store(redis_client, env, spec.type_codec.loads)


# -- the page, the instances ---------------------------------------------------------------------


APP_STATUS = """async () => {
    const kernel = solara.debug.kernel();
    const comm = kernel.createComm('solara.control', 'probe-' + Math.random().toString(16).slice(2));
    comm.open({}, {}, []);
    return await new Promise((resolve, reject) => {
        comm.onMsg = (msg) => {
            const data = msg.content.data;
            if (data.method === 'app-status') {
                resolve(data);
            }
        };
        setTimeout(() => reject(new Error('app-status timeout')), 5000);
        comm.send({ method: 'app-status' });
    });
}"""


def app_status(page: Page) -> dict[str, Any]:
    """The server's app-status reply for the page's kernel, asked over the page's own websocket."""
    return page.evaluate(APP_STATUS)


# -- a paused instance wakes up after another took its kernel over ------------------------------


def test_a_paused_instance_that_wakes_up_is_fenced_out_and_loses_no_newer_update(
    fleet: Fleet, page: Page, env: dict[str, str], store: Store
) -> None:
    env = {**env, "SOLARA_STATE_FLUSH_DEBOUNCE": f"{DEBOUNCE:.0f}s"}
    a = fleet.server(APP, env=env, name="a")
    b = fleet.server(APP, env=env, name="b")
    c = fleet.server(APP, env=env, name="c")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    count_on(page, 0)
    kernel_id, cookie = kernel_id_of(page), cookie_of(page.context)

    click(page, 3)
    count_on(page, 3)
    generation_a = store.wait_for(cookie, kernel_id, 3, "A writing 3")
    wait_until(lambda: state(a)["flush_ok"] >= 1, "A counting its flush")
    written_by_a = state(a)["flush_ok"]
    assert lines(a.logs(), r"flush result=ok " + kernel_field(kernel_id))

    # A takes a fourth click, and is paused inside its debounce window with 4 unwritten.
    click(page, 1)
    clicked = time.monotonic()
    count_on(page, 4)
    paused = True
    a._signal(signal.SIGSTOP)
    try:
        assert store.read(cookie, kernel_id) == (generation_a, 3), (
            f"A wrote 4 before it was paused ({time.monotonic() - clicked:.1f} s after the click, "
            f"debounce {DEBOUNCE} s): the test missed its window"
        )
        # The balancer moves on; the paused instance never sees its connection go.
        proxy.target = b.port
        remounts = debug(page, "remountCount")
        assert proxy.half_open(a.port) >= 1
        count_on(page, 3)  # restored on B: the 4 only ever lived in paused A's memory
        remounted(page, remounts, "success")
        b.wait_for_log(r"restore result=success " + kernel_field(kernel_id))
        taken_over = store.read(cookie, kernel_id)
        assert taken_over is not None and taken_over[0] > generation_a, (
            "B's takeover did not bump the generation"
        )
        generation_b = taken_over[0]

        click(page, 2)
        count_on(page, 5)
        assert store.wait_for(cookie, kernel_id, 5, "B writing 5") == generation_b
        assert state(b)["flush_ok"] >= 1

        log_before_wake = len(a.logs())
        a._signal(signal.SIGCONT)
        paused = False
    finally:
        if paused:
            a._signal(signal.SIGCONT)

    # A wakes up, its debounce expires, and its write of 4 is fenced out: it closes its stale copy.
    a.wait_for_log(r"flush result=rejected " + kernel_field(kernel_id), timeout=FLUSH_TIMEOUT)
    a.wait_for_log(r"close reason=superseded .*" + kernel_field(kernel_id), timeout=FLUSH_TIMEOUT)
    woken = a.logs()[log_before_wake:]
    assert not lines(woken, r"flush result=ok " + kernel_field(kernel_id)), woken
    assert store.read(cookie, kernel_id) == (generation_b, 5), "the stale instance's write landed"
    after = state(a)
    assert after["flush_rejected"] >= 1 and after["flush_ok"] == written_by_a, after
    assert after["superseded_closes"] >= 1, after
    # Its websocket was half-open, so A believed the page was still connected to it.
    assert after["superseded_while_connected"] >= 1, after

    # B goes too: the page fails over to C and gets B's 5, which A's wake-up did not overwrite.
    proxy.target = c.port
    remounts = debug(page, "remountCount")
    assert proxy.drop(b.port) >= 1
    remounted(page, remounts, "success")
    count_on(page, 5)
    c.wait_for_log(r"restore result=success " + kernel_field(kernel_id))
    restored = store.read(cookie, kernel_id)
    assert restored is not None and restored[1] == 5 and restored[0] > generation_b
    click(page, 1)  # live on C, and written there
    count_on(page, 6)
    assert store.wait_for(cookie, kernel_id, 6, "C writing 6") == restored[0]


# -- a stranger's cookie presenting the owner's kernel id ----------------------------------------


def test_a_stranger_presenting_the_owners_kernel_id_gets_nothing_and_disturbs_nothing(
    fleet: Fleet, page: Page, chromium: Browser, env: dict[str, str], store: Store
) -> None:
    a = fleet.server(APP, env=env, name="a")
    b = fleet.server(APP, env=env, name="b")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    count_on(page, 0)
    kernel_id, owner = kernel_id_of(page), cookie_of(page.context)
    click(page, 2)
    count_on(page, 2)
    generation = store.wait_for(owner, kernel_id, 2, "A writing the owner's 2")
    owner_ttl = store.ttl_ms(owner, kernel_id)

    # A stranger's browser (its own cookie) opens the app on B with the owner's kernel id.
    stranger_context = chromium.new_context(viewport={"width": 1024, "height": 700})
    stranger_context.set_default_timeout(15_000)
    try:
        stranger = stranger_context.new_page()
        stranger.goto(f"{b.url}/?kernelid={kernel_id}")
        count_on(stranger, 0)
        assert kernel_id_of(stranger) == kernel_id
        stranger_cookie = cookie_of(stranger_context)
        assert stranger_cookie != owner
        status = app_status(stranger)
        assert status["lastRestore"]["status"] == "miss" and status["lastRestore"]["nFields"] == 0, status
        b.wait_for_log(r"restore result=miss " + kernel_field(kernel_id))
        assert store.read(owner, kernel_id) == (generation, 2), (
            "the stranger's restore touched the owner's hash"
        )

        click(stranger, 1)  # what the stranger changes goes to the stranger's own hash
        count_on(stranger, 1)
        store.wait_for(stranger_cookie, kernel_id, 1, "B writing the stranger's 1 to the stranger's hash")
        assert store.key(stranger_cookie, kernel_id) != store.key(owner, kernel_id)
        assert store.read(owner, kernel_id) == (generation, 2), (
            "the stranger's write reached the owner's hash"
        )
        assert store.ttl_ms(owner, kernel_id) <= owner_ttl, "the owner's hash was refreshed by the stranger"

        # The same stranger at A, where the owner's kernel is live: refused before it can ask anything.
        with connect(
            websocket_url(a, kernel_id),
            additional_headers={"Cookie": f"{COOKIE}={stranger_cookie}"},
            open_timeout=10,
        ) as ws:
            refusal = ws.recv(timeout=10)
            assert "Session id mismatch" in str(refusal), refusal
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)
        assert len(lines(a.logs(), r"restore result=\S+ " + kernel_field(kernel_id))) == 1, (
            "a second takeover on A"
        )

        # The stranger leaves (the next test keeps the stranger's tab open); the tab close deletes
        # the stranger's state only.
        stranger.close()
        b.wait_for_log(r"close reason=page-close deleted=true " + kernel_field(kernel_id))
        assert store.read(stranger_cookie, kernel_id) is None
    finally:
        stranger_context.close()

    # The owner's live kernel on A was not disturbed: it still writes, under the same generation.
    assert store.read(owner, kernel_id) == (generation, 2)
    click(page, 1)
    count_on(page, 3)
    assert store.wait_for(owner, kernel_id, 3, "A writing the owner's 3") == generation
    assert state(a)["flush_rejected"] == 0 and state(a)["superseded_closes"] == 0

    # And the owner's failover to B (where the stranger was) restores the owner's 3.
    proxy.target = b.port
    remounts = debug(page, "remountCount")
    a.kill()
    count_on(page, 3)
    remounted(page, remounts, "success")
    b.wait_for_log(r"restore result=success " + kernel_field(kernel_id))
    restored = store.read(owner, kernel_id)
    assert restored is not None and restored[1] == 3 and restored[0] > generation
    click(page, 1)  # live on B, and written there
    count_on(page, 4)
    assert store.wait_for(owner, kernel_id, 4, "B writing the owner's 4") == restored[0]


# -- a connection that never speaks ----------------------------------------------------------------


def test_a_connection_that_sends_nothing_takes_nothing_over(
    fleet: Fleet, page: Page, env: dict[str, str], store: Store
) -> None:
    # The silent connection's kernel is culled a second after it goes: its close runs in the test.
    env = {**env, "SOLARA_STATE_ORPHAN_CULL_TIMEOUT": "1s"}
    a = fleet.server(APP, env=env, name="a")
    b = fleet.server(APP, env=env, name="b")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    count_on(page, 0)
    kernel_id, owner = kernel_id_of(page), cookie_of(page.context)
    click(page, 2)
    count_on(page, 2)
    generation = store.wait_for(owner, kernel_id, 2, "A writing the owner's 2")
    time.sleep(1.0)  # so a refresh of the TTL in what follows would show (see below)
    ttl_before, since = store.ttl_ms(owner, kernel_id), time.monotonic()

    # The owner's own cookie and kernel id at B, which does not hold that kernel: opened, then closed.
    assert kernels(b) == 0
    with connect(
        websocket_url(b, kernel_id), additional_headers={"Cookie": f"{COOKIE}={owner}"}, open_timeout=10
    ):
        wait_until(lambda: kernels(b) == 1, "B creating a kernel for the connection")
        time.sleep(0.5)  # a takeover on connect (rather than on a message) would have run by now
    wait_until(lambda: kernels(b) == 0, "B culling the silent connection's kernel")

    assert not lines(b.logs(), r"restore result=\S+ " + kernel_field(kernel_id)), b.logs()
    assert store.read(owner, kernel_id) == (generation, 2), "the silent connection took the owner's hash over"
    # A takeover, a flush or a touch would have set the TTL back to the full SOLARA_STATE_TTL:
    # it only ran down, so nothing at all was done to the hash.
    elapsed_ms = (time.monotonic() - since) * 1000
    assert store.ttl_ms(owner, kernel_id) <= ttl_before - elapsed_ms + 200, "the owner's hash was refreshed"
    assert state(b)["restore_attempts"] == 0 and state(b)["flush_ok"] == 0

    # The owner's state is intact for the owner's real failover to B: one takeover, which takes
    # the generation up to the time the page's new connection was opened.
    proxy.target = b.port
    remounts = debug(page, "remountCount")
    a.kill()
    remounted(page, remounts, "success")
    count_on(page, 2)
    assert len(lines(b.logs(), r"restore result=success " + kernel_field(kernel_id))) == 1
    taken = store.read(owner, kernel_id)
    assert taken is not None and taken[1] == 2 and taken[0] > generation


def test_a_connection_whose_kernel_starts_late_takes_nothing_from_the_page_s_next_connection(
    fleet: Fleet, env: dict[str, str], store: Store
) -> None:
    """A holds its only kernel thread (SOLARA_KERNEL_MAX_COUNT=1), so a page's connection there is
    accepted and speaks, but its kernel starts only when the thread frees up: as on an instance
    frozen between the accept and the kernel. The page gave up on it and reconnected to B long
    before. When A finally reads the old connection's message, it must take nothing over."""
    a = fleet.server(APP, env={**env, "SOLARA_KERNEL_MAX_COUNT": "1"}, name="a")
    b = fleet.server(APP, env=env, name="b")
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    owner = {"Cookie": f"{COOKIE}={cookie}"}
    other = {"Cookie": f"{COOKIE}={secrets.token_urlsafe(16)}"}
    with connect(websocket_url(a, str(uuid.uuid4())), additional_headers=other, open_timeout=10) as occupier:
        wait_until(lambda: kernels(a) == 1, "A giving its only kernel thread to another page")
        old_page = uuid.uuid4().hex
        url = websocket_url(a, kernel_id).rsplit("=", 1)[0] + "=" + old_page
        with connect(url, additional_headers=owner, open_timeout=10) as old:
            old.send(first_message(old_page))  # accepted, and queued: no thread reads it yet
            time.sleep(1.0)
        assert kernels(a) == 1 and store.read(cookie, kernel_id) is None

        # The page's reconnect lands on B, which claims the session (nothing was stored).
        new_page = uuid.uuid4().hex
        url = websocket_url(b, kernel_id).rsplit("=", 1)[0] + "=" + new_page
        with connect(url, additional_headers=owner, open_timeout=10) as new:
            new.send(first_message(new_page))
            b.wait_for_log(r"restore result=miss " + kernel_field(kernel_id))
            claimed = store.read(cookie, kernel_id)
            assert claimed is not None and claimed[1] is None
            time.sleep(0.2)  # more than the 50 ms allowed for clocks between instances
            occupier.close()  # A's thread frees up: the old connection's kernel starts, and reads
            a.wait_for_log(r"restore skipped kernel=" + re.escape(kernel_id) + ":", timeout=FLUSH_TIMEOUT)
            assert store.read(cookie, kernel_id) == claimed, "the old connection took the session back"
            assert not lines(a.logs(), r"restore result=\S+ " + kernel_field(kernel_id)), a.logs()


def test_the_store_reader_decodes_what_an_engine_wrote(store: Store, env: dict[str, str]) -> None:
    """The reader the tests above trust: it finds a hash by cookie and kernel id and decodes it."""
    kernel_id, cookie = str(uuid.uuid4()), secrets.token_urlsafe(16)
    assert store.read(cookie, kernel_id) is None
    engine = Engine(Settings.from_env(env))
    try:
        restored = engine.restore(kernel_id, cookie)
        session = engine.open_session(kernel_id, restored, lambda keys: dict.fromkeys(keys, 7))
        engine.mark_dirty(session, FIELD)
        assert engine.drain(5.0) == 0
    finally:
        engine.close()
    assert store.read(cookie, kernel_id) == (restored.generation, 7)
    assert store.read(secrets.token_urlsafe(16), kernel_id) is None, "another cookie addresses another hash"
