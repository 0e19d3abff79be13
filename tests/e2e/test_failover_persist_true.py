"""Failover of an app written against Solara's own persist API, in a real fleet with chromium.

The app (tests/apps/builtin_api_counter.py) uses only ``solara.reactive(..., persist=True)`` and
``PersistConfig`` plus ``import solara_persisted``; it must come back exactly as the
``@persisted`` counter of tests/e2e/test_failover.py does: same restore, same counters, same log lines.
"""

from __future__ import annotations

import pytest
from fleet import Fleet
from playwright.sync_api import Page, expect
from test_failover import RESTORE_TIMEOUT, change_and_flush, click, count_on, remounted_without_dialog, state

pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

APP = "builtin_api_counter.py"


def shows(page: Page, history: str, clicked: str, dark: bool) -> None:
    expect(page.get_by_text(f"History: {history}")).to_be_visible(timeout=RESTORE_TIMEOUT)
    expect(page.get_by_text(f"Clicked: {clicked}")).to_be_visible()
    expect(page.get_by_text(f"Dark: {dark}")).to_be_visible()


def test_sigkill_failover_restores_persist_true_values_in_place(
    fleet: Fleet, page: Page, env: dict[str, str]
) -> None:
    a = fleet.server(APP, env=env, name="a")
    b = fleet.server(APP, env=env, name="b")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    change_and_flush(page, a)
    shows(page, "(1, 2, 3)", "['n1', 'n2', 'n3']", True)
    url = page.url

    proxy.target = b.port
    a.kill()
    count_on(page, 3, 0)  # persist=True values restored (a derived key among them), plain state reset
    shows(page, "(1, 2, 3)", "['n1', 'n2', 'n3']", True)  # a tuple stays a tuple, a frozenset a frozenset
    remounted_without_dialog(page, "success")
    assert page.url == url
    restored = state(b)
    assert (restored["restore_attempts"], restored["restore_success"]) == (1, 1)
    logs = b.logs()
    assert "restore result=success" in logs and "undeclared" not in logs
    click(page, "Add persisted", 1)  # live on B, continuing from the restored values
    count_on(page, 4, 0)
    shows(page, "(1, 2, 3, 4)", "['n1', 'n2', 'n3', 'n4']", False)
