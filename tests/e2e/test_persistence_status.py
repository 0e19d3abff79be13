"""``PersistenceStatus()``: nothing while healthy or off, a discreet notice while degraded.

In process against a real redis-server that is stopped and started (the shared watcher pushes the
change into a rendered page), and in Chromium on a real ``solara run`` whose Redis is unreachable
from the start (``/resourcez`` is ``degraded`` from its first answer, and the page says so).
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import ipyvue
import pytest
import solara
import solara.server.starlette  # a Solara server process: kernels, contexts
from fleet import Fleet, wait_until
from playwright.sync_api import Page, expect
from pytest_redis import factories
from pytest_redis.executor import RedisExecutor
from solara.server import kernel, kernel_context

from solara_persisted import PersistenceStatus, solara_integration
from solara_persisted.config import Settings
from solara_persisted.status import NOTICE

# A server of its own: this module stops it, which must not disturb the shared one.
status_redis = factories.redis_proc(executable=shutil.which("redis-server") or "redis-server", port=None)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def settings(url: str) -> Settings:
    return Settings(
        backend="redis",
        url=url,
        prefix=f"s{uuid.uuid4().hex[:6]}:",
        secret_keys=(secrets.token_urlsafe(32),),
        connect_timeout=0.2,
        session_http_only=True,
        production=False,
    )


@pytest.fixture
def context() -> Iterator[kernel_context.VirtualKernelContext]:
    """A page's kernel context, as Solara makes one per connection."""
    made = kernel_context.VirtualKernelContext(
        id=uuid.uuid4().hex, session_id="cookie", kernel=kernel.Kernel()
    )
    kernel_context.contexts[made.id] = made
    yield made
    made.close(reason="cull")


@pytest.fixture
def activated() -> Iterator[None]:
    """Whatever the test activates is deactivated (drained, unhooked) at its end."""
    yield
    solara_integration.deactivate()


def render(context: kernel_context.VirtualKernelContext, element: Any) -> tuple[Any, Any]:
    with context:
        return solara.render(element, handle_error=False)


def shown(context: kernel_context.VirtualKernelContext, box: Any) -> str | None:
    """The notice's text, or None when the component rendered nothing."""
    with context:
        notices = [child for child in box.children if isinstance(child, ipyvue.Html)]
        return notices[0].children[0] if notices else None


def test_off_renders_nothing_and_starts_no_thread(context: kernel_context.VirtualKernelContext) -> None:
    assert solara_integration.engine() is None
    box, rc = render(context, PersistenceStatus())
    assert shown(context, box) is None
    assert not any(thread.name == "persistence-status" for thread in threading.enumerate())
    with context:
        rc.close()


def test_the_notice_follows_the_backend_down_and_up(
    status_redis: RedisExecutor, context: kernel_context.VirtualKernelContext, activated: None
) -> None:
    active = solara_integration.activate(settings(f"redis://{status_redis.host}:{status_redis.port}/0"))
    box, rc = render(context, PersistenceStatus())
    assert shown(context, box) is None, "healthy: nothing on the page"

    status_redis.stop()
    try:
        assert active.restore(uuid.uuid4().hex, "cookie").result in ("timeout", "skipped")  # a failed call
        wait_until(lambda: shown(context, box) == NOTICE, "the notice pushed into the page", timeout=5)
    finally:
        status_redis.start()
    active.restore(uuid.uuid4().hex, "cookie")  # the backend answers again: healthy
    wait_until(lambda: shown(context, box) is None, "the notice gone again", timeout=5)
    with context:
        rc.close()
    wait_until(
        lambda: not any(thread.name == "persistence-status" for thread in threading.enumerate()),
        "the shared watcher stops with its last page",
        timeout=5,
    )


def test_degraded_from_the_start_with_a_message_of_the_apps_own(
    context: kernel_context.VirtualKernelContext, activated: None
) -> None:
    solara_integration.activate(settings(f"redis://127.0.0.1:{closed_port()}/0"))
    box, rc = render(context, PersistenceStatus(message="Offline copy: changes may be lost."))
    assert shown(context, box) == "Offline copy: changes may be lost."
    with context:
        rc.close()


def test_a_server_whose_redis_is_unreachable_says_degraded_and_shows_it(
    fleet: Fleet, page: Page, env: dict[str, str]
) -> None:
    env = {
        **env,
        "SOLARA_STATE_URL": f"redis://127.0.0.1:{closed_port()}/0",
        "SOLARA_STATE_CONNECT_TIMEOUT": "200ms",
    }
    server = fleet.server("status_counter.py", env=env, name="unreachable")
    with urllib.request.urlopen(server.url + "/resourcez", timeout=5) as response:
        state = json.load(response)["state"]
    assert (state["status"], state["circuit_breaker"]) == ("degraded", "closed"), (
        "degraded from the first probe"
    )

    page.goto(server.url)
    notice = page.get_by_role("status")
    expect(notice).to_have_text(NOTICE)
    assert notice.evaluate("element => parseFloat(getComputedStyle(element).fontSize)") < 16, "discreet"
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_text("Count: 1")).to_be_visible()  # the page keeps working
