"""The fleet harness works: a real `solara run` behind the loopback proxy, driven by chromium.

If this fails, every end-to-end failover test would fail for reasons that are not ours (missing
CDN assets, a browser that cannot start, a proxy that garbles websockets); this says which.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fleet import Fleet, wait_until
from playwright.sync_api import Page, expect

# Real server processes and a real browser on a shared 2-core machine: a failure is retried
# once or twice before it counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_counter_renders_and_counts_through_the_proxy(fleet: Fleet, page: Page, tmp_path: Path) -> None:
    server = fleet.server("counter.py")
    proxy = fleet.proxy(server)
    offline: list[str] = []
    page.on("requestfailed", lambda request: offline.append(f"{request.url} ({request.failure})"))

    page.goto(proxy.url)
    button = page.get_by_role("button", name="Increment")
    button.click()
    expect(page.get_by_text("Count: 1")).to_be_visible()
    button.click()
    expect(page.get_by_text("Count: 2")).to_be_visible()

    shot = tmp_path / "counter.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 1000
    assert not offline, f"requests failed (missing CDN assets?): {offline}"
    accepted_before_drop = proxy.accepted
    assert accepted_before_drop > 0 and proxy.live_connections > 0, "the page did not go through the proxy"
    assert server.running and "Traceback" not in server.logs()

    # the balancer cutting the page's websocket: the client reconnects through the proxy, same kernel
    assert proxy.drop_all() >= 1
    wait_until(lambda: proxy.accepted > accepted_before_drop, "the page reconnecting through the proxy")
    button.click()
    expect(page.get_by_text("Count: 3")).to_be_visible()
