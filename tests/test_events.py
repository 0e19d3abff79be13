"""The ``solara.state`` lines: one greppable line per event, each counted in Stats."""

from __future__ import annotations

import logging
import re

import pytest

from solara_persisted.events import Events, quote
from solara_persisted.stats import Stats

KERNEL = "3308f3b8-1f7c-4c59-a7a3-0d4b1c0e9a11"
# One event word, then key=value pairs whose values are bare or double-quoted with escapes.
LINE = re.compile(r'^[a-z_]+( [a-z_]+=([^\s"=\\]+|"([^"\\]|\\.)*"))+$')


@pytest.fixture
def stats() -> Stats:
    return Stats()


@pytest.fixture
def events(stats: Stats) -> Events:
    return Events(stats)


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="solara.state")
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "solara.state"]


def block(stats: Stats) -> dict:
    return stats.block(enabled=True, breaker_state="closed")


# -- restore --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "counter", "level"),
    [
        ("success", "restore_success", logging.INFO),
        ("timeout", "restore_timeout", logging.INFO),
        ("bailout", "restore_bailout", logging.WARNING),
        ("miss", "restore_miss", logging.INFO),
        ("fresh-schema", "restore_schema_reset", logging.INFO),
    ],
)
def test_restore_results(
    events: Events, stats: Stats, log: pytest.LogCaptureFixture, result: str, counter: str, level: int
) -> None:
    events.restore(result, KERNEL)  # type: ignore[arg-type]
    assert lines(log) == [(level, f"restore result={result} kernel={KERNEL}")]
    counts = block(stats)
    assert counts["restore_attempts"] == 1
    assert counts[counter] == 1
    others = {"restore_success", "restore_timeout", "restore_bailout", "restore_miss", "restore_schema_reset"}
    assert all(counts[name] == 0 for name in others - {counter})


def test_restore_key_cause_and_bytes(events: Events, stats: Stats, log: pytest.LogCaptureFixture) -> None:
    events.restore("bailout", KERNEL, key="shop.cart", cause="hmac")
    events.restore("success", KERNEL, nbytes=520)
    events.restore("success", "other", nbytes=80)
    assert [line for _, line in lines(log)] == [
        f"restore result=bailout kernel={KERNEL} key=shop.cart cause=hmac",
        f"restore result=success kernel={KERNEL}",
        "restore result=success kernel=other",
    ]
    assert (block(stats)["restore_attempts"], block(stats)["restore_bytes_total"]) == (3, 600)


def test_unknown_results_are_refused(events: Events, stats: Stats) -> None:
    with pytest.raises(ValueError, match="unknown restore result 'sucess'"):
        events.restore("sucess", KERNEL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown flush result"):
        events.flush("failed", KERNEL, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown breaker transition"):
        events.breaker("opened", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown close reason"):
        events.close("tab-close", KERNEL, True)  # type: ignore[arg-type]
    assert block(stats)["restore_attempts"] == 0


# -- flush, sync, breaker, close --------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "counter", "level"),
    [
        ("ok", "flush_ok", logging.INFO),
        ("rejected", "flush_rejected", logging.WARNING),
        ("error", "flush_failures", logging.WARNING),
    ],
)
def test_flush(
    events: Events, stats: Stats, log: pytest.LogCaptureFixture, result: str, counter: str, level: int
) -> None:
    events.flush(result, KERNEL, 3)  # type: ignore[arg-type]
    assert lines(log) == [(level, f"flush result={result} kernel={KERNEL} n_fields=3")]
    assert block(stats)[counter] == 1


def test_synced_feeds_the_tables_without_a_line(
    events: Events, stats: Stats, log: pytest.LogCaptureFixture
) -> None:
    events.synced("shop.cart", KERNEL, 120)
    assert lines(log) == []
    result = block(stats)
    assert (result["sync_count"], result["sync_bytes_total"]) == (1, 120)
    assert result["sync_by_kernel"][0]["kernel"] == KERNEL[:8]


@pytest.mark.parametrize(
    ("transition", "level"),
    [("open", logging.WARNING), ("half_open", logging.INFO), ("closed", logging.INFO)],
)
def test_breaker(
    events: Events, stats: Stats, log: pytest.LogCaptureFixture, transition: str, level: int
) -> None:
    events.breaker(transition, "Timeout connecting to server")  # type: ignore[arg-type]
    assert lines(log) == [(level, f'breaker transition={transition} reason="Timeout connecting to server"')]
    assert block(stats)["breaker_transitions"] == 1


@pytest.mark.parametrize("reason", ["page-close", "cull", "superseded", "server-shutdown", "evicted"])
def test_close(events: Events, stats: Stats, log: pytest.LogCaptureFixture, reason: str) -> None:
    events.close(reason, KERNEL, deleted=reason == "page-close")  # type: ignore[arg-type]
    deleted = "true" if reason == "page-close" else "false"
    level = logging.WARNING if reason == "superseded" else logging.INFO
    assert lines(log) == [(level, f"close reason={reason} deleted={deleted} kernel={KERNEL}")]
    assert block(stats)["superseded_closes"] == (1 if reason == "superseded" else 0)


def test_oversize(events: Events, stats: Stats, log: pytest.LogCaptureFixture) -> None:
    events.oversize("shop.frame", KERNEL, 1_500_000, 1_000_000, dropped=False)
    events.oversize("shop.frame", KERNEL, 6_000_000, 5_000_000, dropped=True)
    assert lines(log) == [
        (
            logging.WARNING,
            f"oversize action=warned key=shop.frame kernel={KERNEL} bytes=1500000 limit=1000000",
        ),
        (
            logging.WARNING,
            f"oversize action=dropped key=shop.frame kernel={KERNEL} bytes=6000000 limit=5000000",
        ),
    ]
    assert block(stats)["sync_oversize_dropped"] == 1


def test_superseded_while_connected(events: Events, stats: Stats, log: pytest.LogCaptureFixture) -> None:
    events.superseded_while_connected(KERNEL)
    assert lines(log) == [(logging.WARNING, f"superseded_while_connected kernel={KERNEL}")]
    assert block(stats)["superseded_while_connected"] == 1


# -- greppable lines ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("plain", "plain"),
        ("with space", '"with space"'),
        ("", '""'),
        ('say "hi"', r'"say \"hi\""'),
        ("a=b", '"a=b"'),
        ("back\\slash", r'"back\\slash"'),
        ("two\nlines", r'"two\nlines"'),
        ("tab\there", r'"tab\there"'),
        ("ünïcode", "ünïcode"),
        ("\x85", r'"\x85"'),
        (42, "42"),
    ],
)
def test_quote(value: object, rendered: str) -> None:
    assert quote(value) == rendered


def test_every_line_is_one_greppable_line(events: Events, log: pytest.LogCaptureFixture) -> None:
    nasty = 'Error 111 connecting to "redis:6379".\nConnection refused = bad\\'
    events.restore("bailout", KERNEL, key="user: 42 filters", cause="codec")
    events.flush("error", KERNEL, 2)
    events.breaker("open", nasty)
    events.close("server-shutdown", KERNEL, False)
    events.oversize("a key=with\ttab", KERNEL, 10, 5, dropped=True)
    events.superseded_while_connected(KERNEL)
    rendered = [line for _, line in lines(log)]
    assert len(rendered) == 6
    for line in rendered:
        assert "\n" not in line
        assert LINE.match(line), line
    assert rendered[0] == f'restore result=bailout kernel={KERNEL} key="user: 42 filters" cause=codec'
    assert rendered[2] == (
        r'breaker transition=open reason="Error 111 connecting to \"redis:6379\".'
        r'\nConnection refused = bad\\"'
    )


def test_counts_even_when_the_logger_is_silent(stats: Stats, caplog: pytest.LogCaptureFixture) -> None:
    quiet = logging.getLogger("solara.state.test-quiet")
    quiet.setLevel(logging.CRITICAL)
    events = Events(stats, quiet)
    events.restore("bailout", KERNEL)
    events.flush("ok", KERNEL, 1)
    assert [r for r in caplog.records if r.name == quiet.name] == []
    assert (block(stats)["restore_bailout"], block(stats)["flush_ok"]) == (1, 1)


def test_uses_the_given_logger(stats: Stats, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="myapp.persistence")
    Events(stats, logging.getLogger("myapp.persistence")).flush("ok", KERNEL, 1)
    assert [r.name for r in caplog.records] == ["myapp.persistence"]
