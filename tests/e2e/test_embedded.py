"""solara-persisted inside the user's own Starlette app (lifespan included), under plain uvicorn."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fleet import free_port, server_env, wait_until
from playwright.sync_api import Page, expect

from solara_persisted.address import session_address
from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.spec import persisted, registry

# Real server processes and a real browser on a shared 2-core machine: a failure is retried
# once or twice before it counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

APPS = Path(__file__).resolve().parents[1] / "apps"


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body.startswith(b"{") else body.decode()


@pytest.fixture
def embedded(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = tmp_path / "embedded.log"
    # A long debounce: a change made right before shutdown can only be written by the drain.
    overrides = {"SOLARA_APP": str(APPS / "persisted_counter.py"), "SOLARA_MODE": "production"}
    environment = server_env({**env, **overrides, "SOLARA_STATE_FLUSH_DEBOUNCE": "3s"})
    command = [sys.executable, "-m", "uvicorn", "embedded:app", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--timeout-graceful-shutdown", "5"]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=APPS, env=environment, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url + "/solara/readyz") or process.poll() is not None, "uvicorn up", 30)
        assert process.poll() is None, log.read_text()
        yield url, process, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def other_keys(env: dict[str, str]) -> list[bytes]:
    client = redis.Redis.from_url(env["SOLARA_STATE_URL"])
    try:
        return client.keys(env["SOLARA_STATE_PREFIX"] + "*")
    finally:
        client.close()


def _answers(url: str) -> bool:
    try:
        get(url)
    except OSError:
        return False
    return True


def test_mounted_solara_persists_and_drains_on_shutdown(
    embedded: tuple[str, subprocess.Popen[bytes], Path], page: Page, env: dict[str, str]
) -> None:
    url, process, log = embedded
    assert get(url + "/") == "the user's own app"
    page.goto(url + "/solara/")
    page.get_by_role("button", name="Add persisted").click()
    expect(page.get_by_text("Persisted: 1")).to_be_visible()
    wait_until(lambda: get(url + "/solara/resourcez")["state"]["flush_ok"] >= 1, "a write through the mount")
    state = get(url + "/solara/resourcez")["state"]
    assert state["status"] == "healthy" and state["sync_by_key"][0]["key"].startswith("sha256:")

    page.get_by_role("button", name="Add persisted").click()
    expect(page.get_by_text("Persisted: 2")).to_be_visible()
    process.terminate()  # the lifespan shutdown drains what the debounce had not written yet
    assert process.wait(timeout=20) in (0, -signal.SIGTERM), log.read_text()
    logs = log.read_text()
    assert "solara-persisted active" in logs, "the state lines are visible under plain uvicorn too"

    # What another instance would restore for this browser's session: the last change, drained.
    cookie = next(c["value"] for c in page.context.cookies() if c["name"].startswith("solara-session-id"))
    with registry.isolated():

        @persisted(key="e2e.count")
        def count() -> int:
            return 0

        settings = Settings.from_env(env)  # the instances' own environment
        other = Engine(settings)
        match = re.search(r"flush result=ok kernel=(\S+)", logs)
        assert match, logs
        kernel_id = match.group(1)
        stored = [key for key in other_keys(env) if b"fleet:" not in key]
        assert stored == [(settings.prefix + session_address(cookie, kernel_id)).encode()]
        assert other.restore(kernel_id, cookie).values == {"e2e.count": 2}
        other.close()
