"""The persisted-counter page of the fleet tests, as a person and as a protocol client see it.

``persisted_counter.py`` shows "Persisted: N" and an "Add persisted" button; these helpers read
and click it through Chromium, read what the client's reconnect machinery decided
(``solara.debug``), read an instance's ``/resourcez`` and log, and speak the websocket protocol
directly where a test needs a connection no browser would make.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from typing import Any

from fleet import SolaraServer, wait_until
from playwright.sync_api import BrowserContext, Page, expect

APP = "persisted_counter.py"
COOKIE = "solara-session-id"
RESTORE_TIMEOUT = 20_000  # ms: the client's reconnect back-off plus the restore


def state(server: SolaraServer) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "/resourcez", timeout=5) as response:
        return json.load(response)["state"]


def kernels(server: SolaraServer) -> int:
    """How many virtual kernels the instance holds (Solara's own /resourcez block)."""
    with urllib.request.urlopen(server.url + "/resourcez", timeout=5) as response:
        return int(json.load(response)["kernels"]["total"])


def count_on(page: Page, persisted_count: int) -> None:
    expect(page.get_by_text(f"Persisted: {persisted_count}")).to_be_visible(timeout=RESTORE_TIMEOUT)


def click(page: Page, times: int) -> None:
    for _ in range(times):
        page.get_by_role("button", name="Add persisted").click()


def debug(page: Page, expression: str) -> Any:
    return page.evaluate(f"solara.debug.{expression}")


def kernel_id_of(page: Page) -> str:
    kernel_id = page.evaluate("solara.debug.kernel().id")
    assert isinstance(kernel_id, str) and kernel_id, kernel_id
    return kernel_id


def cookie_of(context: BrowserContext) -> str:
    (cookie,) = [cookie["value"] for cookie in context.cookies() if cookie["name"] == COOKIE]
    return cookie


def remounted(page: Page, remounts_before: int, status: str) -> None:
    """The client reconnected and soft re-mounted with this restore verdict; no refresh dialog."""
    wait_until(
        lambda: (
            debug(page, "remountCount") > remounts_before and debug(page, "connectionStatus") == "connected"
        ),
        "the page re-mounting after its reconnect",
        timeout=RESTORE_TIMEOUT / 1000,
    )
    assert (debug(page, "lastRestore") or {}).get("status") == status, debug(page, "lastRestore")
    expect(page.get_by_text("Please refresh the page")).not_to_be_visible()


def lines(log: str, pattern: str) -> list[str]:
    return re.findall(rf"^.*{pattern}.*$", log, re.MULTILINE)


def kernel_field(kernel_id: str) -> str:
    """The `kernel=<id>` of a log line, as a regex that does not match a longer id."""
    return rf"kernel={re.escape(kernel_id)}(?:\s|$)"


def websocket_url(server: SolaraServer, kernel_id: str) -> str:
    return (
        f"ws://127.0.0.1:{server.port}/jupyter/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
    )


def first_message(page_id: str) -> str:
    """The page's first message, as Solara's client sends it: opening its control comm."""
    header = {"msg_id": uuid.uuid4().hex, "session": page_id, "msg_type": "comm_open", "version": "5.3"}
    content = {"comm_id": uuid.uuid4().hex, "target_name": "solara.control", "data": {}}
    return json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"})
