"""Smoke test of the in-process CPU bench (bench/bench_cpu.py): tiny sizes, one round.

It drives the same events through no engine, Solara's engine and ours on a redis-server of its
own; this checks that every side ran, that both engines wrote (and off did not), and that ours
took fewer round trips than it wrote sessions. The CPU figures are for the run by hand
(bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.redis


def test_the_cpu_bench_runs_three_sides(tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    command = [sys.executable, "bench/bench_cpu.py", "--sessions", "20", "--rate", "40", "--seconds", "2"]
    command += ["--rounds", "1", "--json", str(out)]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "CPU per 1,000 changes" in run.stdout
    rounds = json.loads(out.read_text())["rounds"]
    assert set(rounds) == {"off", "solara", "ours"}
    off, solara, ours = (rounds[side][0] for side in ("off", "solara", "ours"))
    assert min(off["changes"], solara["changes"], ours["changes"]) >= 60
    assert off["flushes"] == off["round_trips"] == 0
    assert solara["flushes"] > 0 and ours["flushes"] > 0
    assert 0 < ours["round_trips"] < ours["flushes"]  # windows closing together share a trip
    for side in (off, solara, ours):
        assert side["cpu_ms"] > 0 and side["event_path_ms"] > 0
