"""What a new user's `solara run` says about persistence before anything is persisted (real servers)."""

from __future__ import annotations

import pytest
from fleet import Fleet

# Real server processes on a shared 2-core machine: a failure is retried before it counts.
pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)


def test_persistence_off_is_said_once_and_a_misspelt_setting_is_named(fleet: Fleet) -> None:
    server = fleet.server("persisted_counter.py", env={"SOLARA_STATE_TTLL": "5m"}, name="off")
    server.wait_for_log(r"persistence is off \(SOLARA_STATE_BACKEND is unset")
    server.wait_for_log(r"SOLARA_STATE_TTLL is not a setting solara-persisted knows; did you mean SOLARA_STATE_TTL\?")
    assert server.logs().count("persistence is off") == 1


def test_a_misspelt_setting_is_named_when_persistence_is_on(fleet: Fleet, env: dict[str, str]) -> None:
    server = fleet.server("persisted_counter.py", env={**env, "SOLARA_STATE_FLUSH_DEBOUNSE": "1s"}, name="on")
    server.wait_for_log(r"solara-persisted active")
    server.wait_for_log(r"SOLARA_STATE_FLUSH_DEBOUNSE is not a setting .*did you mean SOLARA_STATE_FLUSH_DEBOUNCE\?")
