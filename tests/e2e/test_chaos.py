"""The chaos checker (bench/chaos.py) against a real fleet: it finds each planted bug, the same
schedules pass on the real engine, and a short seeded random run has no violation.

Each run starts its own redis-server and ``solara run`` instances and stops them; the schedules
are a few seconds each. The planted bugs come from bench/chaos_plants.py, loaded by the test app
only (``CHAOS_PLANT``), never by the package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support import REPO

sys.path.insert(0, str(REPO / "bench"))
import chaos

pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)

#: For each bug, a schedule that exposes it: pauses outliving the users (the woken instance
#: writes last; the first comes before some sessions' first write, which a takeover's claim
#: fences), a graceful shutdown, a crash.
SCHEDULES = {
    "fencing-off": "pause@1:0:60,pause@3:1:60",
    "drain-skipped": "terminate@1.5:0",
    "wrong-session": "kill@1.5:0",
}
#: A debounce long enough that the instance the fault hits surely holds unwritten changes.
DEBOUNCE = {"fencing-off": "0.2", "drain-skipped": "3", "wrong-session": "0.2"}
#: Which rules each bug must break.
RULES = {"fencing-off": {"lost", "schema", "back-in-time", "torn"}, "drain-skipped": {"lost"}, "wrong-session": {"foreign"}}


def run(*args: str) -> tuple[int, str]:
    lines: list[str] = []
    code = chaos.main([*args, "--clients", "10", "--seconds", "5", "--shrink", "0"], out=lines.append)
    return code, lines[-1]


@pytest.mark.parametrize("plant", sorted(SCHEDULES))
def test_the_checker_finds_a_planted_bug_that_the_engine_does_not_have(
    plant: str, solara_cdn_assets: None, tmp_path: Path
) -> None:
    json_path = tmp_path / "history.json"
    code, last = run("--seed", "3", "--schedules", "1", "--instances", "3", "--steps", SCHEDULES[plant], "--debounce", DEBOUNCE[plant], "--plant", plant, "--json", str(json_path))
    assert code == 1 and " violations=0" not in last, f"the checker missed {plant}: {last}"
    history = json.loads(json_path.read_text())
    rules = {v["rule"] for schedule in history["schedules"] for v in schedule["violations"]}
    assert rules & RULES[plant], f"{plant} broke {rules}, expected one of {RULES[plant]}"

    code, last = run(
        "--seed", "3", "--schedules", "1", "--instances", "3", "--steps", SCHEDULES[plant], "--debounce", DEBOUNCE[plant]
    )
    assert code == 0 and last.endswith(" violations=0"), f"the same schedule on the real engine: {last}"


#: Schedules under which the checker found engine bugs, each with the debounce it needs
#: (bench/README.md): before the fixes each gave violations, now none.
REGRESSIONS = {
    # A is paused holding a session's first change; B's takeover finds nothing and must fence A.
    "a-miss-claims-the-session": ("pause@1:0:2.5", "3"),
    # Failovers land on i2 while its link to Redis is cut: their fresh pages claim once it is back.
    "a-fresh-start-claims-once-redis-answers": ("link_cut@1:1:4,kill@1.5:0", "0.2"),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_a_schedule_that_found_an_engine_bug_has_no_violation(name: str, solara_cdn_assets: None) -> None:
    steps, debounce = REGRESSIONS[name]
    code, last = run("--seed", "5", "--schedules", "1", "--instances", "3", "--steps", steps, "--debounce", debounce)
    assert code == 0 and last.endswith(" violations=0"), f"{name}: {last}"


def test_a_short_seeded_run_has_no_violation(solara_cdn_assets: None) -> None:
    """Crashes, graceful shutdowns, pauses, a cut link and Redis down or slow: the faults under
    which the checker found its two engine bugs (a miss that claimed nothing, a fresh start while
    Redis was unreachable), bench/README.md."""
    code, last = run(
        "--seed", "20", "--schedules", "2", "--instances", "3",
        "--faults", "kill,terminate,pause,link_cut,redis_kill,redis_latency",
    )
    assert code == 0, last
    assert last.startswith("chaos: schedules=2 ") and last.endswith(" violations=0")
