"""The README's main job in a real browser: the shop on the memory backend, "Simulate failover"."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from fleet import Fleet, wait_until
from playwright.sync_api import Page, expect

# Real server processes and a real browser on a shared 2-core machine: a failure is retried
# once or twice before it counts (retries show as R / 'rerun' in pytest's summary).
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop_app.py"


def test_simulated_failover_remounts_the_shop_with_its_persisted_inputs(fleet: Fleet, page: Page) -> None:
    env = {
        "SOLARA_STATE_BACKEND": "memory",
        "SOLARA_STATE_SECRET_KEYS": secrets.token_urlsafe(32),
        "SOLARA_STATE_TEST_EVICTION": "true",
        "SOLARA_STATE_FLUSH_DEBOUNCE": "100ms",
        "SOLARA_SESSION_HTTP_ONLY": "true",
        "SOLARA_MODE": "development",
    }
    server = fleet.server(SHOP, env=env, production=False, name="shop")
    page.goto(server.url)
    page.get_by_role("checkbox", name="In stock only").check()
    page.get_by_role("button", name="b2").click()
    expect(page.get_by_text("Selected: Designing Data-Intensive Applications")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("Checkout, step 2 of 3")).to_be_visible()
    page.get_by_role("button", name="Unsaved clicks: 0").click()
    expect(page.get_by_role("button", name="Unsaved clicks: 1")).to_be_visible()
    page.get_by_role("button", name="USD").click()
    expect(page.get_by_text("Currency: USD.")).to_be_visible()
    expect(page.get_by_text("59 $")).to_be_visible()  # prices follow the session's currency
    expect(page.get_by_text("Max price: 65 $")).to_be_visible()  # the slider says its value
    shown = page.get_by_text(re.compile(r"^Persistence generation: \d+$"))
    generation = int(shown.inner_text().rpartition(" ")[2])

    page.get_by_role("button", name="Simulate failover").click()
    # the kernel is gone, the page re-mounts on a fresh one restored from the backend, whose
    # takeover raised the generation to the time its connection was opened
    wait_until(lambda: int(shown.inner_text().rpartition(" ")[2]) > generation, "a takeover's generation", timeout=20)
    expect(page.get_by_text("Selected: Designing Data-Intensive Applications")).to_be_visible()
    expect(page.get_by_text("Checkout, step 2 of 3")).to_be_visible()
    expect(page.get_by_role("checkbox", name="In stock only")).to_be_checked()
    expect(page.get_by_role("button", name="Unsaved clicks: 0")).to_be_visible()  # not persisted
    expect(page.get_by_text("Currency: USD.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Restored 4 values on .+ in \d+ ms"))).to_be_visible()
    wait_until(lambda: "close reason=evicted deleted=false" in server.logs(), "the evicted close line")
    assert "restore result=success" in server.logs()

    page.reload()  # F5: the session's currency stays, this page's state starts afresh
    expect(page.get_by_text("Currency: USD.")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Checkout, step 1 of 3")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Restored 1 value on .+: shop\.currency$"))).to_be_visible()
