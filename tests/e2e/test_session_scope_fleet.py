"""Session scope as a person sees it: F5, a second tab, a failover, another browser, a logout.

Real `solara run` instances on a real redis-server behind the loopback proxy, driven by chromium.
"""

from __future__ import annotations

import pytest
from fleet import Fleet, wait_until
from playwright.sync_api import Browser, Page, expect
from test_failover import RESTORE_TIMEOUT, remounted_without_dialog, state

pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

APP = "scoped_counter.py"


def shows(page: Page, theme: str, note: str, count: int) -> None:
    expect(page.get_by_text(f"Theme: {theme}")).to_be_visible(timeout=RESTORE_TIMEOUT)
    expect(page.get_by_text(f"Note: [{note}]")).to_be_visible()
    expect(page.get_by_text(f"Count: {count}")).to_be_visible()


def settled(server: object) -> None:
    wait_until(lambda: state(server)["flush_ok"] >= 1, "a flush")  # type: ignore[arg-type]
    before = state(server)["flush_ok"]  # type: ignore[arg-type]
    wait_until(lambda: state(server)["flush_ok"] == before, "writes settled")  # type: ignore[arg-type]


def test_reload_new_tab_failover_and_logout(
    fleet: Fleet, page: Page, chromium: Browser, env: dict[str, str]
) -> None:
    a = fleet.server(APP, env=env, name="a")
    b = fleet.server(APP, env=env, name="b")
    proxy = fleet.proxy(a)
    page.goto(proxy.url)
    shows(page, "light", "", 0)
    expect(page.get_by_text("Restore: miss keys=- callbacks=1")).to_be_visible()
    page.get_by_role("button", name="Toggle theme").click()
    page.get_by_role("button", name="Count").click()
    page.get_by_role("button", name="Count").click()
    shows(page, "dark", "+", 2)
    wait_until(lambda: state(a)["sync_count"] >= 3, "both scopes written")

    page.reload()  # F5: a new kernel of the same browser session
    shows(page, "dark", "+", 0)
    expect(page.get_by_text("Restore: success keys=scoped.note,scoped.theme callbacks=1")).to_be_visible()

    second = page.context.new_page()  # a new tab shares the session's values
    second.goto(proxy.url)
    shows(second, "dark", "+", 0)
    second.get_by_role("button", name="Toggle theme").click()  # the newest change wins
    shows(second, "light", "++", 0)
    page.get_by_role("button", name="Count").click()
    shows(page, "dark", "+", 1)  # each tab keeps its own copy until it reloads
    wait_until(lambda: state(a)["sync_count"] >= 6, "the second tab's change and the first's count written")

    stranger = chromium.new_context().new_page()  # another browser, another cookie
    stranger.goto(proxy.url)
    shows(stranger, "light", "", 0)
    expect(stranger.get_by_text("Restore: miss keys=- callbacks=1")).to_be_visible()
    stranger.context.close()

    proxy.target = b.port
    a.kill()  # a failover restores both scopes of the first tab, in place
    shows(page, "light", "++", 1)
    remounted_without_dialog(page, "success")
    assert state(b)["restore_success"] >= 1

    page.get_by_role("button", name="Log out").click()  # forget_session(): this tab resets
    shows(page, "light", "", 1)
    wait_until(lambda: "forget session=" in b.logs(), "the forget logged")
    third = page.context.new_page()
    third.goto(proxy.url)
    shows(third, "light", "", 0)
    expect(third.get_by_text("Restore: miss keys=- callbacks=1")).to_be_visible()
