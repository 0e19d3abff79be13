"""The pre-stop drain in a real fleet: `solara-persisted drain` against a real `solara run`.

The instance's debounce is 30 s, so a click lives only in its memory: only the drain can have
written it before the page moved. The balancer (the loopback proxy) stops sending new
connections to the draining instance, as Kubernetes does when a pod starts terminating; the
drain closes the page's websocket, and Chromium's reconnect lands on the other instance.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from counter_page import (
    APP,
    COOKIE,
    click,
    count_on,
    debug,
    first_message,
    kernels,
    remounted,
    state,
    websocket_url,
)
from fleet import Fleet, SolaraServer, wait_until
from playwright.sync_api import Page
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

# Real server processes and a real browser on a shared 2-core machine: a failure is retried
# once or twice before it counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

CLI = str(Path(sys.executable).with_name("solara-persisted"))
TOKEN = secrets.token_urlsafe(32)


def run_drain(server: SolaraServer, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The preStop hook's command, with the pod's environment (the token, or none)."""
    env = {"PATH": str(Path(sys.executable).parent)}
    if token is not None:
        env["SOLARA_STATE_DRAIN_TOKEN"] = token
    return subprocess.run(
        [CLI, "drain", "--url", server.url, *args], capture_output=True, text=True, env=env, timeout=60
    )


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_drained_instance_hands_its_page_on_with_nothing_lost_and_no_dialog(
    fleet: Fleet, page: Page, env: dict[str, str]
) -> None:
    env = {**env, "SOLARA_STATE_FLUSH_DEBOUNCE": "30s", "SOLARA_STATE_DRAIN_TOKEN": TOKEN}
    a = fleet.server(APP, env=env, name="a")
    b = fleet.server(APP, env=env, name="b")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    count_on(page, 0)
    click(page, 3)
    count_on(page, 3)
    assert state(a)["flush_ok"] == 0, "the clicks are still only in A's memory (30 s debounce)"

    proxy.target = b.port  # A is terminating: the balancer sends new connections elsewhere
    remounts = debug(page, "remountCount")
    drained = run_drain(a, TOKEN, "--timeout", "10s")
    assert drained.returncode == 0, drained.stderr
    report = json.loads(drained.stdout)
    assert report["kernels"] == 1 and report["unwritten"] == 0 and report["websockets_closed"] == 1, report
    a.wait_for_log(r"drain reason=pre-stop kernels=1 unwritten=0 websockets_closed=1 ")
    assert state(a)["flush_ok"] == 1, "the drain wrote the page's session"

    remounted(page, remounts, "success")
    count_on(page, 3)  # restored on B: nothing lost, though A's debounce had 27 s to go
    b.wait_for_log(r"restore result=success ")
    click(page, 1)
    count_on(page, 4)  # live on B

    # A stays out of the fleet: not ready, its metrics say so, and a new connection gets no kernel.
    assert http_status(a.url + "/readyz") == 503
    assert http_status(b.url + "/readyz") == 200
    with urllib.request.urlopen(a.url + "/metrics", timeout=5) as response:
        assert "solara_state_draining 1.0" in response.read().decode()
    before = kernels(a)
    page_id = uuid.uuid4().hex
    url = websocket_url(a, str(uuid.uuid4())).rsplit("=", 1)[0] + "=" + page_id
    with (
        connect(url, additional_headers={"Cookie": f"{COOKIE}={secrets.token_urlsafe(16)}"}, open_timeout=10) as ws,
        pytest.raises(ConnectionClosed),
    ):
        ws.send(first_message(page_id))
        ws.recv(timeout=10)
    assert kernels(a) == before


def test_the_drain_command_refuses_in_one_line(fleet: Fleet, env: dict[str, str]) -> None:
    a = fleet.server(APP, env={**env, "SOLARA_STATE_DRAIN_TOKEN": TOKEN}, name="a")
    b = fleet.server(APP, env=env, name="b")  # no drain token: no drain endpoint

    cases = [
        (run_drain(a, None), "SOLARA_STATE_DRAIN_TOKEN is not set here"),
        (run_drain(a, secrets.token_urlsafe(32)), "HTTP 401"),
        (run_drain(b, TOKEN), "HTTP 404 the drain endpoint is off: set SOLARA_STATE_DRAIN_TOKEN on the server"),
        (run_drain(a, TOKEN, "--timeout", "2m"), "--timeout 2m is not above zero and at most 60s"),
    ]
    for result, expected in cases:
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert http_status(a.url + "/readyz") == 200, "a refused drain changed nothing"
    wait_until(lambda: "refused a drain request" in a.logs(), "A logging the wrong token")


def test_a_sigterm_writes_every_session_before_a_websocket_closes(fleet: Fleet, page: Page, env: dict[str, str]) -> None:
    """No pre-stop drain: a plain SIGTERM. uvicorn closes the websockets first and Solara closes
    the kernels (the shutdown flush) only after; the page's reconnect to B must still find the
    clicks that lived only in A's memory (30 s debounce), not race A's flush and fence it out."""
    env = {**env, "SOLARA_STATE_FLUSH_DEBOUNCE": "30s"}
    a = fleet.server(APP, env=env, name="a")
    b = fleet.server(APP, env=env, name="b")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    count_on(page, 0)
    click(page, 2)
    count_on(page, 2)
    assert state(a)["flush_ok"] == 0

    proxy.target = b.port
    remounts = debug(page, "remountCount")
    a.stop()  # SIGTERM, and wait for the process to end
    remounted(page, remounts, "success")
    count_on(page, 2)
    a_log = a.logs()
    assert "drain reason=shutdown kernels=1 unwritten=0 " in a_log, a_log
    assert "flush result=rejected" not in a_log, "A's write came after B's takeover"
