"""``/metrics`` of a real `solara run`: promtool lints a real scrape, and a real Prometheus scrapes it.

Each page connection below sends its first message, which is what runs a takeover; with nothing
stored it is a restore ``result=miss``, so the counter ``solara_state_restores_total{result="miss"}``
rises by one per connection, and Prometheus must see it rise through its query API.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from counter_page import APP, COOKIE, first_message, websocket_url
from fleet import Fleet, SolaraServer, free_port, wait_until
from websockets.sync.client import connect

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    (PROMETHEUS is None or PROMTOOL is None) and os.environ.get("CI") != "true",
    reason="Debian's prometheus package is missing: run the README's test command, which installs it",
)


def open_page(server: SolaraServer) -> None:
    """A page's connection that speaks once (a takeover: a miss) and waits for its restore line."""
    kernel_id, page_id = str(uuid.uuid4()), uuid.uuid4().hex
    url = websocket_url(server, kernel_id).rsplit("=", 1)[0] + "=" + page_id
    with connect(url, additional_headers={"Cookie": f"{COOKIE}={secrets.token_urlsafe(16)}"}, open_timeout=10) as ws:
        ws.send(first_message(page_id))
        server.wait_for_log(rf"restore result=miss kernel={kernel_id}")


def scrape(server: SolaraServer) -> bytes:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read()


def test_a_real_scrape_passes_promtool(fleet: Fleet, env: dict[str, str]) -> None:
    server = fleet.server(APP, env=env, name="a")
    open_page(server)
    body = scrape(server)
    assert b'solara_state_restores_total{result="miss"} 1.0' in body
    assert PROMTOOL is not None
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


def test_metrics_can_be_turned_off(fleet: Fleet, env: dict[str, str]) -> None:
    server = fleet.server(APP, env={**env, "SOLARA_STATE_METRICS": "false"}, name="a")
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
            body = response.read()
    except urllib.error.HTTPError as error:  # Solara's router: the app has no page of that name
        body = error.read()
    assert b"solara_state_" not in body
    open_page(server)  # persistence itself is on


@contextlib.contextmanager
def prometheus(target: SolaraServer, workdir: Path) -> Iterator[str]:
    """A real Prometheus on loopback scraping ``target`` every second; yields its base URL."""
    assert PROMETHEUS is not None
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [{"job_name": "solara", "static_configs": [{"targets": [f"127.0.0.1:{target.port}"]}]}],
            }
        )
    )
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(url + "/-/ready") is not None, "Prometheus answering /-/ready", timeout=30)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read()
    except OSError:
        return None


def query(base: str, expression: str) -> float | None:
    """The instant value of ``expression`` (one series), or None while it has none."""
    answer = _get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
    if answer is None:
        return None
    data = json.loads(answer)
    assert data["status"] == "success", data
    result = data["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_a_real_prometheus_sees_a_counter_rise(fleet: Fleet, env: dict[str, str], tmp_path: Path) -> None:
    server = fleet.server(APP, env=env, name="a")
    misses = 'solara_state_restores_total{job="solara",result="miss"}'
    with prometheus(server, tmp_path) as base:
        wait_until(lambda: query(base, misses) == 0, "Prometheus scraping the instance's first zero", timeout=30)
        open_page(server)
        wait_until(lambda: query(base, misses) == 1, "Prometheus seeing the first miss", timeout=30)
        open_page(server)
        open_page(server)
        wait_until(lambda: query(base, misses) == 3, "Prometheus seeing the counter rise", timeout=30)
        assert query(base, f"increase({misses}[1m])") is not None
        assert query(base, 'solara_state_breaker_state{state="closed"}') == 1
        assert query(base, "up{job=\"solara\"}") == 1
