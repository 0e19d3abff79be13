"""A failover on our engine, seen from the browser's console and screen, in Chromium.

Every failover logs a few errors and warnings in the console. docs/operations.md, "Browser
console during a failover", shows they are Solara's client's own: the same messages appear with
Solara's built-in engine and none of our code on the page, with our page script removed, and
(all but the re-mount's) on a plain network blip of a Solara app with no persistence at all.
This test allows exactly those, logged from Solara's bundle, and fails on anything else: any
console error or warning from our page script, any uncaught exception.

It also checks what the person sees during the soft re-mount: never Solara's placeholder text
(`A widget with mount-id="solara-main" should go here`), and our "Restoring session…" notice
while the page is being rebuilt (both from solara_persisted/client/refresh-banner.js).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from fleet import Fleet
from playwright.sync_api import ConsoleMessage, Error, Page, expect
from test_failover import count_on, remounted_without_dialog, two_instances

pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

# The script Solara's page loads from its CDN (the vuetify-3 app: Vue, Vuetify, the widget
# manager, @jupyterlab/services). The allowed messages below are logged from there.
SOLARA_BUNDLE = re.compile(
    r"/_solara/cdn/@widgetti/solara-vuetify3-app@[^/]+/dist/solara-vuetify-app\d+(\.min)?\.js$"
)

# Proved to be Solara's client's, not ours: docs/operations.md, "Browser console during a failover".
SOLARA_CLIENT_MESSAGES = {
    # @jupyterlab/services kernel/default.js: the websocket dropped, the client reconnects
    "warning": [re.compile(r"Connection lost, reconnecting in \d+ seconds\.")],
    "error": [
        # Vue's runtime-core logError: the page's Vue root fails to patch itself once the
        # connection state changes (Teleport insert into a null container: the overlays) ...
        re.compile(r"TypeError: Cannot read properties of null \(reading 'insertBefore'\)(\n|$)"),
        # ... and on each later re-render (shouldUpdateComponent on a vnode without component),
        re.compile(r"TypeError: Cannot read properties of null \(reading 'emitsOptions'\)(\n|$)"),
        # which reads as this instead when __VUE_PROD_DEVTOOLS__ is on (patchElement, el.__vnode)
        re.compile(r"TypeError: Cannot set properties of null \(setting '__vnode'\)(\n|$)"),
    ],
}
# solara-widget-manager8 manager.js clearStateLocal(): jupyter-vue's VueView.remove() calls
# this.vueApp.unmount() on a root view Solara mounted as a component (no vueApp of its own)
SOLARA_CLIENT_MESSAGES["warning"].append(
    re.compile(
        r"solara clearStateLocal: model\.close\(true\) failed "
        r"TypeError: Cannot read properties of undefined \(reading 'unmount'\)(\n|$)"
    )
)

# In the page before any of its scripts: is the placeholder text on screen, and when was our
# notice shown. Sampled every frame and on every DOM change (both run before the next paint).
PROBE = r"""
window.__seen = {placeholder: [], notice: []};
(function () {
  function check() {
    if (!document.body) { return; }
    const now = Math.round(performance.now());
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const text = walker.currentNode;
      if (text.nodeValue.indexOf('should go here') < 0) { continue; }
      const range = document.createRange();
      range.selectNodeContents(text);
      if (range.getClientRects().length > 0 && getComputedStyle(text.parentElement).visibility !== 'hidden') {
        window.__seen.placeholder.push(now);
      }
    }
    const notice = document.getElementById('solara-persisted-restoring');
    if (notice && notice.textContent === 'Restoring session…') { window.__seen.notice.push(now); }
  }
  function frame() { check(); requestAnimationFrame(frame); }
  requestAnimationFrame(frame);
  document.addEventListener('DOMContentLoaded', function () {
    new MutationObserver(check).observe(document.body, {childList: true, subtree: true, characterData: true});
  });
})();
"""
VUE_DEVTOOLS = "window.__VUE_PROD_DEVTOOLS__ = true;"  # as in a browser with Vue devtools on


class Console:
    """Every console message and uncaught exception of a page, from before it loads."""

    def __init__(self, page: Page) -> None:
        self.messages: list[ConsoleMessage] = []
        self.exceptions: list[Error] = []
        page.on("console", lambda message: self.messages.append(message))
        page.on("pageerror", lambda exception: self.exceptions.append(exception))

    def not_solaras(self) -> list[str]:
        """Errors and warnings that are not one of Solara's client's proved messages, from its bundle."""
        unexpected = [f"uncaught exception: {e.message}\n{e.stack}" for e in self.exceptions]
        for message in self.messages:
            if message.type not in ("error", "warning"):
                continue
            known = any(pattern.match(message.text) for pattern in SOLARA_CLIENT_MESSAGES[message.type])
            if not (known and SOLARA_BUNDLE.search(message.location.get("url", ""))):
                unexpected.append(f"console.{message.type} at {message.location}: {message.text}")
        return unexpected


def seen(page: Page) -> dict[str, Any]:
    return page.evaluate("window.__seen")


@pytest.mark.parametrize("vue_devtools", [False, True], ids=["plain", "vue-devtools"])
def test_a_failover_logs_only_solaras_own_messages_and_never_shows_the_placeholder(
    fleet: Fleet, page: Page, env: dict[str, str], vue_devtools: bool
) -> None:
    page.context.add_init_script(PROBE)
    if vue_devtools:
        page.context.add_init_script(VUE_DEVTOOLS)
    console = Console(page)
    a, b, proxy = two_instances(fleet, page, env)
    assert console.not_solaras() == []  # a clean start: page load, clicks, writes
    remount_started = page.evaluate("performance.now()")

    proxy.target = b.port
    a.kill()
    count_on(page, 3, 0)
    remounted_without_dialog(page, "success")
    expect(page.locator("#solara-persisted-restoring")).to_have_count(0)  # the notice is gone again
    time.sleep(0.5)  # the last re-render's messages arrive just after the view is back

    assert console.not_solaras() == []
    screen = seen(page)
    assert screen["placeholder"] == [], "Solara's mount-point placeholder text was on screen"
    assert [t for t in screen["notice"] if t >= remount_started], (
        "no 'Restoring session…' during the re-mount"
    )
    assert _client(page, "remountCount") == 1


def _client(page: Page, expression: str) -> Any:
    return page.evaluate(f"solara.debug.{expression}")
