"""The circuit breaker, driven by a fake clock; its transitions go through real Events and Stats."""

from __future__ import annotations

import logging
import threading

import pytest

from solara_persisted.breaker import Breaker
from solara_persisted.events import Events
from solara_persisted.stats import Stats


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stats() -> Stats:
    return Stats()


@pytest.fixture
def breaker(clock: FakeClock, stats: Stats) -> Breaker:
    return Breaker(3, 30.0, Events(stats), clock=clock)


def transitions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("breaker ")]


def test_starts_closed_and_allows(breaker: Breaker) -> None:
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(10))


def test_opens_after_consecutive_failures_only(breaker: Breaker, stats: Stats) -> None:
    breaker.failure("timeout")
    breaker.failure("timeout")
    breaker.success()  # not consecutive any more
    breaker.failure("timeout")
    breaker.failure("timeout")
    assert breaker.state == "closed"
    breaker.failure("connection refused")
    assert breaker.state == "open"
    assert not breaker.allow()
    assert stats.block(enabled=True, breaker_state=breaker.state)["breaker_transitions"] == 1


def test_open_line_is_a_warning_naming_the_reason(breaker: Breaker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="solara.state")
    for _ in range(3):
        breaker.failure("connection refused")
    [record] = [r for r in caplog.records if r.getMessage().startswith("breaker ")]
    assert record.levelno == logging.WARNING
    assert (
        record.getMessage()
        == 'breaker transition=open reason="3 consecutive failures, last: connection refused"'
    )


def test_full_cycle_open_half_open_closed(
    breaker: Breaker, clock: FakeClock, stats: Stats, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="solara.state")
    for _ in range(3):
        breaker.failure("down")
    clock.now += 29.9
    assert not breaker.allow()
    assert breaker.state == "open"
    clock.now += 0.1
    assert breaker.allow()  # the probe
    assert breaker.state == "half_open"
    assert not breaker.allow()  # probe in flight: everyone else waits
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert [line.split(" reason=")[0] for line in transitions(caplog)] == [
        "breaker transition=open",
        "breaker transition=half_open",
        "breaker transition=closed",
    ]
    assert stats.block(enabled=True, breaker_state="closed")["breaker_transitions"] == 3


def test_failed_probe_reopens_and_restarts_the_window(
    breaker: Breaker, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="solara.state")
    for _ in range(3):
        breaker.failure("down")
    clock.now += 30
    assert breaker.allow()
    clock.now += 5
    breaker.failure("still down")
    assert breaker.state == "open"
    assert transitions(caplog)[-1] == 'breaker transition=open reason="probe failed: still down"'
    clock.now += 29
    assert not breaker.allow()  # the window restarted at the failed probe
    clock.now += 1
    assert breaker.allow()
    assert breaker.state == "half_open"


def test_after_closing_it_takes_the_full_count_again(breaker: Breaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.failure("down")
    clock.now += 30
    assert breaker.allow()
    breaker.success()
    breaker.failure("blip")
    breaker.failure("blip")
    assert breaker.state == "closed"


def test_failures_reported_while_open_change_nothing(
    breaker: Breaker, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="solara.state")
    for _ in range(3):
        breaker.failure("down")
    clock.now += 20
    breaker.failure("a call that started before the breaker opened")
    clock.now += 10
    assert breaker.allow()  # the window was not restarted
    assert len(transitions(caplog)) == 2


def test_a_lost_probe_is_replaced_after_another_window(breaker: Breaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.failure("down")
    clock.now += 30
    assert breaker.allow()
    clock.now += 29
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()  # the first probe never reported back
    assert not breaker.allow()


def test_one_failure_threshold(clock: FakeClock) -> None:
    breaker = Breaker(1, 5.0, Events(Stats()), clock=clock)
    breaker.failure("down")
    assert breaker.state == "open"


def test_refuses_a_zero_threshold() -> None:
    with pytest.raises(ValueError, match="at least one failure"):
        Breaker(0, 5.0, Events(Stats()))


def test_exactly_one_concurrent_caller_gets_the_probe(
    breaker: Breaker, clock: FakeClock, stats: Stats
) -> None:
    for _ in range(3):
        breaker.failure("down")
    clock.now += 30
    start = threading.Barrier(16)
    granted: list[bool] = []

    def caller() -> None:
        start.wait()
        granted.append(breaker.allow())

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 1
    assert stats.block(enabled=True, breaker_state=breaker.state)["breaker_transitions"] == 2


def test_transitions_are_reported_outside_the_lock(clock: FakeClock) -> None:
    """An events sink that reads the breaker's state must neither deadlock nor see a stale state."""
    seen: list[str] = []

    class ReadingEvents(Events):
        def breaker(self, transition: str, reason: str) -> None:  # type: ignore[override]
            seen.append(f"{transition}:{subject.state}")
            super().breaker(transition, reason)  # type: ignore[arg-type]

    subject = Breaker(1, 1.0, ReadingEvents(Stats()), clock=clock)
    subject.failure("down")
    clock.now += 1
    assert subject.allow()
    subject.success()
    assert seen == ["open:open", "half_open:half_open", "closed:closed"]


def test_a_probe_given_back_goes_to_the_next_caller_at_once(breaker: Breaker, clock: FakeClock) -> None:
    for _ in range(3):
        breaker.failure("down")
    breaker.give_back()  # open: nothing to give back, the window still runs
    assert not breaker.allow()
    clock.now += 30
    assert breaker.allow()
    assert not breaker.allow()
    breaker.give_back()
    assert breaker.allow()
    assert breaker.state == "half_open"
    breaker.success()
    breaker.give_back()  # closed: no effect
    assert breaker.state == "closed"
