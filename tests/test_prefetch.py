"""Prefetched takeovers: claimed once, never worse than doing the work on demand, bounded."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fleet import wait_until

from solara_persisted.prefetch import Prefetcher


class Work:
    """Records every call; a call for kernel ``hold`` blocks until ``release`` is set."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.release = threading.Event()

    def __call__(self, kernel_id: str, session_id: str) -> str:
        self.calls.append((kernel_id, session_id))
        if kernel_id == "hold":
            assert self.release.wait(10)
        return f"{kernel_id}/{session_id}"


@pytest.fixture
def work() -> Iterator[Work]:
    work = Work()
    yield work
    work.release.set()


def test_a_claim_takes_the_prefetched_result_once(work: Work) -> None:
    ahead = Prefetcher(work)
    assert ahead.start("k1", "s1")
    assert not ahead.start("k1", "s1"), "one prefetch per kernel and session"
    assert ahead.claim("k1", "s1") == "k1/s1"
    assert ahead.claim("k1", "s1") is None, "a result is handed out once"
    assert work.calls == [("k1", "s1")]
    ahead.close()


def test_a_claim_for_another_session_gets_nothing(work: Work) -> None:
    ahead = Prefetcher(work)
    ahead.start("k1", "s1")
    assert ahead.claim("k1", "intruder") is None
    assert ahead.claim("k1", "s1") == "k1/s1"
    ahead.close()


def test_a_claim_waits_for_a_running_prefetch(work: Work) -> None:
    ahead = Prefetcher(work, workers=1)
    ahead.start("hold", "s1")
    wait_until(lambda: work.calls, "the prefetch started")
    claimed: list[str | None] = []
    claimer = threading.Thread(target=lambda: claimed.append(ahead.claim("hold", "s1")))
    claimer.start()
    claimer.join(0.2)
    assert claimer.is_alive(), "the claim waits for the running work rather than repeating it"
    work.release.set()
    claimer.join(10)
    assert claimed == ["hold/s1"]
    assert work.calls == [("hold", "s1")]
    ahead.close()


def test_a_prefetch_still_queued_is_cancelled_and_left_to_the_caller(work: Work) -> None:
    ahead = Prefetcher(work, workers=1)
    ahead.start("hold", "s1")  # occupies the only worker
    wait_until(lambda: work.calls, "the first prefetch started")
    ahead.start("k2", "s2")
    assert ahead.claim("k2", "s2") is None, "queued: the caller does the work itself, without waiting"
    work.release.set()
    assert ahead.claim("hold", "s1") == "hold/s1"
    ahead.close()
    assert ("k2", "s2") not in work.calls


def test_pending_prefetches_are_bounded_and_expire(work: Work) -> None:
    ahead = Prefetcher(work, limit=2, expiry=0.05)
    assert ahead.start("k1", "s") and ahead.start("k2", "s")
    assert not ahead.start("k3", "s"), "the table is full"
    wait_until(lambda: len(work.calls) == 2, "both ran")
    threading.Event().wait(0.1)
    assert ahead.start("k3", "s"), "the unclaimed ones expired"
    assert ahead.pending() == 1
    assert ahead.claim("k1", "s") is None
    ahead.close()


def test_after_close_nothing_starts(work: Work) -> None:
    ahead = Prefetcher(work)
    ahead.start("k1", "s1")
    ahead.close()
    assert not ahead.start("k2", "s2")
    assert ahead.claim("k1", "s1") is None
