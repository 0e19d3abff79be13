"""A loopback Solara fleet for end-to-end tests: real `solara run` processes, a proxy, Chromium.

Failover is only believable when the parts are real: each instance is its own `solara run`
process (so SIGKILL loses exactly what a crash loses), clients reach the fleet through a proxy
whose target can be switched and whose connections can be cut (what a load balancer does when an
instance dies), and the browser is Debian's chromium driven by Playwright. Everything listens on
127.0.0.1 and every wait is bounded, so a broken build fails in seconds instead of hanging CI.

The fixtures are `fleet`, `browser` (a fresh BrowserContext per test), `page`, `chromium` (the
session's Browser) and `solara_cdn_assets`. Their functions are named `<fixture>_fixture` so that
importing them does not shadow the fixture arguments: `tests/e2e/conftest.py` imports all five
for every end-to-end test. The loopback helpers every test may use live in `tests/support.py`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from support import APPS, REPO, free_port, server_env, wait_until

from solara_persisted.dev.fleet import answers_ready, launch_solara
from solara_persisted.dev.proxy import LoopbackProxy

__all__ = ["APPS", "REPO", "Fleet", "SolaraServer", "free_port", "server_env", "wait_until"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # only loopback resolves: a page that reaches for the internet fails at once, visibly
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
)
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SETUP_HINT = "run the README's test command, bash .ci/test, which installs the test prerequisites"


def missing_cdn_assets() -> str | None:
    """Why Solara's page would hang on the CDN here, or None when its asset cache is complete."""
    check = subprocess.run(
        [sys.executable, str(REPO / ".ci" / "solara-assets"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return None if check.returncode == 0 else (check.stderr or check.stdout).strip()


class SolaraServer:
    """One `solara run` process on a loopback port, its stdout+stderr captured to a file.

    Runs in its own working directory (Solara reads `.env` from there) and its own process group,
    so a kill takes any child with it.
    """

    def __init__(
        self,
        app: str | Path,  # a file, a directory or a module name, as `solara run` takes it
        *,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        production: bool = True,
        name: str = "solara",
    ) -> None:
        # the process runs in `workdir`: a relative path must not change meaning there
        self.app = str(Path(app).resolve()) if Path(app).exists() else str(app)
        self.port = port or free_port()
        self.name = name
        self.workdir = workdir
        self.env = server_env(env)
        self.production = production
        self.log_path = workdir / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = READY_TIMEOUT) -> SolaraServer:
        """Start and wait until `/readyz` answers; fail with the log tail if it doesn't in time."""
        if self.process is not None:
            raise RuntimeError(f"{self.name} was already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = launch_solara(
            self.app,
            self.port,
            workdir=self.workdir,
            env=self.env,
            log_path=self.log_path,
            production=self.production,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited before it was ready:\n{self._tail()}")
            if answers_ready(self.url):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s:\n{self._tail()}")
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group: a crash or OOM kill, nothing gets to flush."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (a graceful shutdown), SIGKILL if it outlives `timeout`; returns the exit code."""
        if self.process is None:
            return None
        self._signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first log match of the regex `pattern`, waiting for it up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.logs(), re.MULTILINE)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no log line matching {pattern!r}:\n{self._tail()}")
            time.sleep(0.05)
        return match

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def __enter__(self) -> SolaraServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Fleet:
    """Servers and proxies started by one test, all torn down when it ends (logs kept in `workdir`)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[SolaraServer] = []
        self.proxies: list[LoopbackProxy] = []

    def server(
        self,
        app: str | Path,
        *,
        env: Mapping[str, str] | None = None,
        production: bool = True,
        name: str | None = None,
    ) -> SolaraServer:
        """Start an instance of `app` (a path, or a name under tests/apps/) and wait until it is ready."""
        path = Path(app) if Path(app).exists() else APPS / app
        name = name or f"instance-{len(self.servers)}"
        server = SolaraServer(path, workdir=self.workdir / name, env=env, production=production, name=name)
        self.servers.append(server)
        return server.start()

    def proxy(self, target: SolaraServer | int | None = None) -> LoopbackProxy:
        port = target.port if isinstance(target, SolaraServer) else target
        proxy = LoopbackProxy(port)
        self.proxies.append(proxy)
        return proxy.start()

    def close(self) -> None:
        """Proxies first, then servers; one failing to stop does not leave the others running."""
        with contextlib.ExitStack() as stack:
            for server in self.servers:
                stack.callback(server.stop)
            for proxy in self.proxies:
                stack.callback(proxy.close)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@pytest.fixture(name="solara_cdn_assets", scope="session")
def solara_cdn_assets_fixture() -> None:
    """Fail early and clearly when Solara's page would wait forever on an unreachable CDN."""
    problem = missing_cdn_assets()
    if problem:
        pytest.fail(f"{problem}. Solara's page needs them offline: {SETUP_HINT}", pytrace=False)


@pytest.fixture(name="fleet")
def fleet_fixture(solara_cdn_assets: None, tmp_path: Path) -> Iterator[Fleet]:
    """Start servers with `fleet.server(app, env=...)` and proxies with `fleet.proxy(server)`."""
    with Fleet(tmp_path / "fleet") as started:
        yield started


@pytest.fixture(name="chromium", scope="session")
def chromium_fixture() -> Iterator[Browser]:
    """Debian's chromium, headless, launched once per session (never a downloaded browser)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: {SETUP_HINT}", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS), timeout=30_000
        )
        yield launched
        launched.close()


@pytest.fixture(name="browser")
def browser_fixture(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context per test (own cookies, so its own Solara session), bounded waits."""
    context = chromium.new_context(viewport={"width": 1024, "height": 700})
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture(name="page")
def page_fixture(browser: BrowserContext) -> Page:
    """A new tab in the test's fresh context."""
    return browser.new_page()
