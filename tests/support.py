"""Loopback helpers for every test: the repository's paths, a free port, a bounded wait, and the
environment of a `solara run` instance a test starts (ours only, never the caller's settings)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it, so parallel runs don't clash)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], object], what: str = "the condition", timeout: float = 10.0) -> None:
    """Poll `condition` until truthy; the assertion names `what` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a test instance: ours only, never the caller's SOLARA_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLARA_")}
    env.update(
        {
            "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "false",  # no phoning home from a test
            "SOLARA_ASSETS_PROXY": "true",  # assets come from the pre-filled cache
            "PYTHONUNBUFFERED": "1",  # log lines reach the file before a SIGKILL
        }
    )
    env.update(extra or {})
    return env
