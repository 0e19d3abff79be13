"""Smoke test of the fleet benchmark (bench/bench_fleet.py): tiny sizes, Redis normal only.

The bench starts one redis-server and a fresh ``solara run --production`` server for each of the
three configurations (no persistence, Solara's built-in engine, ours), drives a few protocol-level
sessions and writes its JSON; this checks the JSON's shape and that every figure that must be
positive is. The numbers themselves are for the full run by hand (bench/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KEYS = {
    "config",
    "sessions",
    "redis",
    "threads",
    "rss_per_session_bytes",
    "cpu_ms_per_1000_changes",
    "event_p50_ms",
    "event_p99_ms",
    "redis_bytes_per_session",
    "redis_commands_per_s",
    "changes",
}
REDIS_FIGURES = ("redis_bytes_per_session", "redis_commands_per_s")

# three real server starts on a shared 2-core machine: one retry before a failure counts
pytestmark = [pytest.mark.redis, pytest.mark.flaky(reruns=1, reruns_delay=1)]


def test_the_fleet_bench_measures_three_configurations(tmp_path: Path) -> None:
    """Run as a person runs it (its own process: it runs an event loop of its own)."""
    out = tmp_path / "fleet.json"
    argv = ["--sessions", "5", "--seconds", "3", "--warmup", "1", "--interval", "0.5", "--redis", "normal"]
    logs = tmp_path / "logs"
    command = [sys.executable, str(REPO / "bench" / "bench_fleet.py"), *argv, "--json", str(out), "--keep-logs", str(logs)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    written = json.loads(out.read_text())
    assert set(written) == {"runs"}
    runs = {run["config"]: run for run in written["runs"]}
    assert len(written["runs"]) == 3 and set(runs) == {"off", "solara", "ours"}
    for config, run in runs.items():
        assert set(run) == KEYS, config
        assert run["sessions"] == 5 and run["redis"] == "normal", run
        assert run["threads"] > 0 and run["changes"] > 0 and run["event_p50_ms"] > 0, run
        assert run["event_p99_ms"] >= run["event_p50_ms"] and run["cpu_ms_per_1000_changes"] > 0, run
        assert isinstance(run["rss_per_session_bytes"], (int, float)), run
    for config in ("solara", "ours"):
        assert runs[config]["redis_bytes_per_session"] > 0, runs[config]
        assert runs[config]["redis_commands_per_s"] > 0, runs[config]
    assert all(runs["off"][figure] is None for figure in REDIS_FIGURES), runs["off"]
    texts = {config: (logs / f"{config}-5-normal" / "solara.log").read_text() for config in runs}
    assert "solara-persisted active" in texts["ours"]
    assert "solara-persisted active" not in texts["solara"] + texts["off"]


def test_rounds_merge_into_medians_with_their_ranges() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    import bench_fleet

    def run(p99: float, rss: float, redis_bytes: float | None) -> dict[str, object]:
        return {
            "config": "ours",
            "sessions": 5,
            "redis": "normal",
            "event_p99_ms": p99,
            "rss_per_session_bytes": rss,
            "redis_bytes_per_session": redis_bytes,
            "extra": {"asked": 5, "timeouts": 0, "state_end": "healthy", "latencies_ms": [p99 / 2] * 99 + [p99]},
        }

    one = bench_fleet.merged([run(100.0, 10.0, 5.0), run(300.0, 30.0, None), run(200.0, 20.0, 7.0)])
    assert (one["event_p99_ms"], one["rss_per_session_bytes"]) == (200.0, 20.0)
    assert one["redis_bytes_per_session"] is None  # a figure some round lacks has no median
    assert one["extra"]["spread"]["event_p99_ms"] == (100.0, 300.0)
    assert one["extra"]["state_end"] == "healthy" and one["extra"]["timeouts"] == 0
    # the pooled p99 of 300 events is the 4th worst: after 300 and 200 ms, one of round two's 150s
    assert len(one["extra"]["latencies_ms"]) == 300 and one["extra"]["event_p99_pooled_ms"] == 150.0
    assert bench_fleet.merged([run(1.0, 2.0, 3.0)]) == run(1.0, 2.0, 3.0)


def test_pin_starts_the_server_on_its_own_cpu_and_gives_the_caller_its_cpus_back() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    import bench_fleet

    mine = os.sched_getaffinity(0)
    target = {max(mine)}
    with bench_fleet.pinned(target):
        child = subprocess.Popen([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"], stdout=subprocess.PIPE, text=True)
    printed, _ = child.communicate(timeout=30)
    assert printed.strip() == str(sorted(target))
    assert os.sched_getaffinity(0) == mine


def test_pin_on_one_cpu_is_refused_with_the_fix() -> None:
    command = ["taskset", "-c", "0", sys.executable, str(REPO / "bench" / "bench_fleet.py"), "--pin", "--quick"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert finished.returncode == 2
    assert "--pin needs 2 CPUs or more; this process may run on 1: drop --pin" in finished.stderr
