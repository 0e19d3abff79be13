"""The chaos checker's model on hand-written histories: each rule passes a correct history and
names the violation in one that breaks it (the fleet runs show the same against planted bugs)."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from support import REPO

sys.path.insert(0, str(REPO / "bench"))
from chaos_model import Bounds, check

BOUNDS = Bounds(debounce=0.2, flush=0.5, breaker_window=1.0, retry=1.0, connect_timeout=2.0, machine=1.0)
INSTANCES = {"i1": {"tag": "t1"}, "i2": {"tag": "t1"}, "i3": {"tag": "t2"}}


def restore(t: float, seq: int, instance: str, *, live: bool = False, result: str = "success", **values: str) -> dict[str, Any]:
    state = {"a": "", "b": "", "c": "", **values}
    return {"t": t, "user": 1, "kind": "restore", "values": state, "seq": seq, "instance": instance, "live": live, "result": result}


def send(t: float, seq: int, **values: str) -> dict[str, Any]:
    return {"t": t, "user": 1, "kind": "send", "seq": seq, "set": values}


def ack(t: float, seq: int, instance: str) -> dict[str, Any]:
    return {"t": t, "user": 1, "kind": "ack", "seq": seq, "instance": instance}


def history(last_restored: dict[str, Any]) -> list[dict[str, Any]]:
    """User 1 on i1: two commands, a third setting a and b together; i1 dies; i2 restores."""
    return [
        restore(0.0, 0, "i1", result="miss"),
        send(1.0, 1, a="u1-1"),
        ack(1.1, 1, "i1"),
        send(2.0, 2, b="u1-2"),
        ack(2.1, 2, "i1"),
        send(5.0, 3, a="u1-3", b="u1-3"),
        ack(5.1, 3, "i1"),
        last_restored,
    ]


def rules(records: list[dict[str, Any]], faults: list[dict[str, Any]]) -> list[str]:
    return [violation.rule for violation in check(records, faults, INSTANCES, BOUNDS, end=100.0)]


KILL = [{"t": 5.2, "kind": "kill", "instance": "i1"}]
TERM = [{"t": 5.2, "kind": "terminate", "instance": "i1"}]


def test_a_correct_failover_passes() -> None:
    after_kill = restore(6.0, 2, "i2", a="u1-1", b="u1-2")  # command 3 was inside the debounce
    assert rules(history(after_kill), KILL) == []
    after_term = restore(6.0, 3, "i2", a="u1-3", b="u1-3")
    assert rules(history(after_term), TERM) == []


def test_another_users_value_is_foreign() -> None:
    assert "foreign" in rules(history(restore(6.0, 2, "i2", a="u2-1", b="u1-2")), KILL)


def test_losing_a_durable_value_is_lost() -> None:
    assert rules(history(restore(6.0, 1, "i2", a="u1-1")), KILL) == ["lost"]


def test_a_graceful_shutdown_owes_the_last_value() -> None:
    assert rules(history(restore(6.0, 2, "i2", a="u1-1", b="u1-2")), TERM) == ["lost"]


def test_an_outage_extends_what_a_kill_may_lose() -> None:
    outage = [{"t": 0.5, "kind": "redis_pause", "instance": None}, {"t": 4.0, "kind": "redis_pause_end", "instance": None}]
    # command 2 was acknowledged during the pause: not yet durable when i1 died at 5.2
    assert rules(history(restore(6.0, 0, "i2", result="miss")), outage + KILL) == []
    assert rules(history(restore(6.0, 0, "i2", result="miss")), KILL) == ["lost"]


@pytest.mark.parametrize(
    ("busy", "expected"),
    [
        ((), ["lost"]),
        ((2.2, 3.2), []),  # a command sent after the acknowledgement waited a second
        ((0.9, 2.0), []),  # one answered just before it had waited a second: the queue was that long
        ((0.2, 1.2), ["lost"]),  # answered over one flush before the acknowledgement: no longer behind
    ],
)
def test_an_instance_answering_late_has_that_much_longer_to_write(busy: tuple[float, ...], expected: list[str]) -> None:
    """Command 2 (acknowledged at 2.1) is owed by a kill at 3.0, unless i1 answered its clients a
    second late around then: its writer waits for the same CPU (chaos seeds 723 and 914)."""
    records = [*history(restore(6.0, 1, "i2", a="u1-1"))[:5], restore(6.0, 1, "i2", a="u1-1")]
    if busy:
        sent, answered = busy
        records += [
            {"t": sent, "user": 2, "kind": "send", "seq": 1, "set": {"a": "u2-1"}},
            {"t": answered, "user": 2, "kind": "ack", "seq": 1, "instance": "i1", "handled_ms": 10.0},
        ]
    assert rules(records, [{"t": 3.0, "kind": "kill", "instance": "i1"}]) == expected


def test_half_of_one_event_is_torn() -> None:
    assert rules(history(restore(6.0, 3, "i2", a="u1-3", b="u1-2")), TERM) == ["torn"]
    assert rules(history(restore(6.0, 2, "i2", a="u1-3", b="u1-2")), KILL) == ["torn"]


def test_a_fresh_page_that_claimed_the_session_is_not_back_in_time() -> None:
    """i2 read command 3; the next restore read nothing (Redis out: a fresh page, a fork), and that
    page claimed the session when Redis came back without changing anything: the last read shows
    the fresh page's empty state, which is what the user saw last, not a step back."""
    records = [
        *history(restore(6.0, 3, "i2", a="u1-3", b="u1-3")),
        restore(7.0, 0, "i3", result="skipped"),
        restore(9.0, 0, "checker", result="miss"),
    ]
    assert rules(records, TERM) == []


def test_a_later_restore_is_never_older() -> None:
    records = [*history(restore(6.0, 3, "i2", a="u1-3", b="u1-3")), restore(7.0, 2, "i2", live=True, a="u1-1", b="u1-2")]
    assert "back-in-time" in rules(records, TERM)


@pytest.mark.parametrize(
    ("result", "instance", "expected"),
    [("bailout", "i2", ["schema", "lost"]), ("fresh-schema", "i2", ["schema"]), ("fresh-schema", "i3", [])],
)
def test_a_bailout_or_an_unexplained_reset_is_a_schema_violation(result: str, instance: str, expected: list[str]) -> None:
    assert rules(history(restore(6.0, 0, instance, result=result)), TERM) == expected


@pytest.mark.parametrize(("acknowledged", "expected"), [(False, []), (True, ["schema"])])
def test_a_reset_after_a_reset_that_wrote_nothing_is_explained(acknowledged: bool, expected: list[str]) -> None:
    """i3 runs a new tag: its restore resets, and it dies before the page writes anything. Another
    instance on the new tag still finds the old tag's state: a second reset, unless a change
    acknowledged on i3 long enough before its death was owed to Redis."""
    records = [
        restore(0.0, 0, "i1", result="miss"),
        send(1.0, 1, a="u1-1"),
        ack(1.1, 1, "i1"),
        restore(3.0, 0, "i3", result="fresh-schema"),
        *([send(3.2, 2, a="u1-2"), ack(3.3, 2, "i3")] if acknowledged else []),
        restore(6.0, 0, "i4", result="fresh-schema"),
    ]
    faults = [{"t": 2.9, "kind": "terminate", "instance": "i1"}, {"t": 5.0, "kind": "kill", "instance": "i3"}]
    found = [v.rule for v in check(records, faults, {**INSTANCES, "i4": {"tag": "t2"}}, BOUNDS, end=100.0)]
    assert found == expected


def test_an_interaction_slower_than_the_connect_timeout_during_an_outage() -> None:
    outage = [{"t": 0.5, "kind": "redis_slow", "instance": None}, {"t": 9.0, "kind": "redis_slow_end", "instance": None}]
    slow = [*history(restore(9.0, 3, "i1", live=True, a="u1-3", b="u1-3"))]
    slow[6] = ack(8.9, 3, "i1")  # command 3 sent at 5.0, acknowledged 3.9 s later
    assert rules(slow, outage) == ["latency"]
    assert rules(slow, []) == [], "outside a Redis fault the machine's own pauses are not the engine's"


def test_with_the_handlers_time_the_handler_is_judged_not_the_round_trip() -> None:
    """A loaded instance queued the command 3.9 s, but its handler took 10 ms: persistence made
    nobody wait. A handler that itself took 2.8 s during the fault is a violation."""
    outage = [{"t": 0.5, "kind": "redis_slow", "instance": None}, {"t": 9.0, "kind": "redis_slow_end", "instance": None}]
    queued = [*history(restore(9.0, 3, "i1", live=True, a="u1-3", b="u1-3"))]
    queued[6] = {**ack(8.9, 3, "i1"), "handled_ms": 10.0}
    assert rules(queued, outage) == []
    blocked = [*queued]
    blocked[6] = {**ack(8.9, 3, "i1"), "handled_ms": 2800.0}
    assert rules(blocked, outage) == ["latency"]
    assert rules(blocked, []) == []


def test_a_command_lost_in_a_crash_is_not_part_of_any_later_state() -> None:
    """Command 3 (a and b) was lost when i1 died; command 4 on i2 sets only a. The state after
    command 4 is a=4 with b from command 2, not from the lost command 3."""
    records = [
        *history(restore(6.0, 2, "i2", a="u1-1", b="u1-2")),
        send(7.0, 4, a="u1-4"),
        ack(7.1, 4, "i2"),
        restore(9.0, 4, "i1", a="u1-4", b="u1-2"),
    ]
    kills = [*KILL, {"t": 8.0, "kind": "terminate", "instance": "i2"}]
    assert rules(records, kills) == []
    records[-1] = restore(9.0, 4, "i1", a="u1-4", b="u1-3")  # the lost command come back
    assert "torn" in rules(records, kills)


def test_a_lost_command_that_comes_back_is_back_in_time() -> None:
    """What a paused instance's late first write does when the instance that took over found
    nothing stored and wrote nothing: the restore showed command 3 lost, a later one has it."""
    records = [*history(restore(6.0, 2, "i2", a="u1-1", b="u1-2")), restore(9.0, 3, "i3", a="u1-3", b="u1-3")]
    assert rules(records, KILL) == ["back-in-time"]


def degraded_fork(stored_side_wins: bool) -> list[dict[str, Any]]:
    """i1 dies; the reconnect lands on i2 with Redis unreachable (a fresh start); the user sets c;
    i2 dies too; i3 restores either the stored state or what i2's page showed."""
    last = (
        restore(20.0, 3, "i3", a="u1-3", b="u1-3")
        if stored_side_wins
        else restore(20.0, 4, "i3", c="u1-4")
    )
    return [
        *history(restore(6.0, 0, "i2", result="skipped")),
        send(7.0, 4, c="u1-4"),
        ack(7.1, 4, "i2"),
        last,
    ]


OUTAGE_THEN_KILLS = [
    {"t": 5.2, "kind": "terminate", "instance": "i1"},
    {"t": 5.5, "kind": "link_cut", "instance": "i2"},
    {"t": 9.0, "kind": "link_cut_end", "instance": "i2"},
    {"t": 9.5, "kind": "kill", "instance": "i2"},
]


@pytest.mark.parametrize("stored_side_wins", [True, False], ids=["stored-state", "fresh-page"])
def test_a_restore_that_read_nothing_forks_the_session_and_either_side_may_win(stored_side_wins: bool) -> None:
    assert rules(degraded_fork(stored_side_wins), OUTAGE_THEN_KILLS) == []


def test_after_a_fork_a_mix_of_both_sides_is_torn() -> None:
    records = degraded_fork(stored_side_wins=False)
    records[-1] = restore(20.0, 4, "i3", a="u1-3", b="u1-3", c="u1-4")  # the fresh page's claim kept old values
    assert rules(records, OUTAGE_THEN_KILLS) == ["torn"]


def test_after_a_fork_an_older_command_than_one_restored_before_is_back_in_time() -> None:
    records = [
        *degraded_fork(stored_side_wins=False),
        restore(30.0, 2, "i1", a="u1-1", b="u1-2"),  # the fresh page's side won at 20.0; then older state
    ]
    assert set(rules(records, OUTAGE_THEN_KILLS)) == {"back-in-time"}


def test_a_session_that_moved_off_a_live_holder_is_owed_what_that_holder_had_written() -> None:
    """No fault hit i1 (the engine closed the page, say): command 3, durable long before the
    reconnect, must be in the restore."""
    records = history(restore(9.0, 2, "i2", a="u1-1", b="u1-2"))
    assert rules(records, []) == ["lost"]
    assert rules(history(restore(9.0, 3, "i2", a="u1-3", b="u1-3")), []) == []


def test_a_graceful_shutdown_whose_drain_met_a_full_redis_owes_nothing_it_could_not_write() -> None:
    """The terminate is logged when it is over (5.9), its drain ran from 5.2 while Redis refused
    writes (until 5.5): the acknowledged command 3 may be lost; with Redis fine it is owed."""
    full = [
        {"t": 4.0, "kind": "redis_full", "instance": None},
        {"t": 5.5, "kind": "redis_full_end", "instance": None},
        {"t": 5.9, "kind": "terminate", "instance": "i1", "began": 5.2},
    ]
    after = restore(6.0, 2, "i2", a="u1-1", b="u1-2")
    assert rules(history(after), full) == []
    assert rules(history(after), [full[2]]) == ["lost"]


def test_a_graceful_shutdown_while_the_breaker_is_still_open_owes_nothing_it_could_not_write() -> None:
    """Redis came back at 4.5, but the breaker the outage opened refuses calls for its window
    (1 s here): a drain from 5.2 could not write, one from 5.6 could."""
    paused = [{"t": 3.0, "kind": "redis_pause", "instance": None}, {"t": 4.5, "kind": "redis_pause_end", "instance": None}]
    after = restore(7.0, 2, "i2", a="u1-1", b="u1-2")
    early = {"t": 6.5, "kind": "terminate", "instance": "i1", "began": 5.2}
    late = {"t": 6.5, "kind": "terminate", "instance": "i1", "began": 5.6}
    assert rules(history(after), [*paused, early]) == []
    assert rules(history(after), [*paused, late]) == ["lost"]
    # what was durable before the outage is owed all the same: command 2, written by 2.8
    assert rules(history(restore(7.0, 1, "i2", a="u1-1")), [*paused, early]) == ["lost"]


@pytest.mark.parametrize(("restored", "code"), [(restore(6.0, 2, "i2", a="u1-1", b="u1-2"), 0), (restore(6.0, 1, "i2", a="u1-1"), 1)])
def test_saved_histories_are_judged_again_without_a_fleet(tmp_path: Any, restored: dict[str, Any], code: int) -> None:
    import chaos

    saved = tmp_path / "history.json"
    schedule = {"index": 0, "seed": 1, "steps": [], "faults": KILL, "instances": INSTANCES, "records": history(restored)}
    saved.write_text(json.dumps({"seed": 1, "debounce": 0.2, "schedules": [schedule]}))
    lines: list[str] = []
    assert chaos.main(["--judge", str(saved)], out=lines.append) == code
    assert lines[-1].endswith(f" violations={code}")


def test_the_fault_count_takes_each_instance_s_stop_once_per_run() -> None:
    """Histories of the fourth session logged retired instances again at each key rotation."""
    import chaos

    def outcome(seed: int, faults: list[dict[str, Any]]) -> chaos.Outcome:
        return chaos.Outcome(0, seed, [], [], faults, [], {})

    stop = {"t": 1.0, "kind": "terminate", "instance": "i1"}
    again = [stop, {**stop, "t": 2.0}, {"t": 3.0, "kind": "kill", "instance": "i2"}]
    final = {"t": 9.0, "kind": "kill", "instance": "i3", "final": True}
    counts = chaos._fault_counts([outcome(7000, again), outcome(7001, [stop, final]), outcome(8000, [stop])])
    assert counts == {"terminate": 2, "kill": 1}, "i1 stops once in run 7 and once in run 8"


def test_a_live_kernel_on_another_instance_owes_what_the_acknowledging_one_wrote() -> None:
    """Seed 964: the user's first kernel stayed alive on i2 (paused); the changes went to i1, which
    was killed while Redis was down, so they were never written; the reconnect reached i2's old
    kernel. It shows what Redis held, which is all that can be owed; with Redis up, i1 had written
    command 2 before it died, and a page showing less is a loss."""
    live_on_i2 = history(restore(6.0, 0, "i2", live=True))
    outage = [{"t": 0.5, "kind": "redis_down", "instance": None}, {"t": 9.0, "kind": "redis_down_end", "instance": None}]
    assert rules(live_on_i2, [*outage, *KILL]) == []
    assert rules(live_on_i2, KILL) == ["lost"]
    assert rules(history(restore(6.0, 0, "i1", live=True)), [*outage, *KILL]) == ["lost"], (
        "the live kernel that acknowledged holds everything it acknowledged"
    )
