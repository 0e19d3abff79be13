"""The /resourcez ``state`` block: field names and order, tables, caps, redaction and the token."""

from __future__ import annotations

import hashlib
import threading

import pytest

from solara_persisted.stats import (
    EXTRA_FIELDS,
    OTHER,
    SPEC_FIELDS,
    TABLE_LABELS,
    Stats,
    hash_label,
    reveal_keys,
)

# Copied by hand from the operations guide's "Observability" example, in its order.
GUIDE_FIELDS = [
    "status",
    "circuit_breaker",
    "restore_attempts",
    "restore_success",
    "restore_bailout",
    "restore_miss",
    "restore_schema_reset",
    "flush_ok",
    "flush_rejected",
    "flush_failures",
    "breaker_transitions",
    "superseded_closes",
    "superseded_while_connected",
    "backend_last_ok_age_seconds",
    "backend_last_error",
    "sync_count",
    "sync_bytes_total",
    "sync_mb_total",
    "restore_bytes_total",
    "sync_keys_dropped",
    "sync_kernels_dropped",
    "sync_by_key",
    "sync_by_kernel",
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def block(stats: Stats, **kwargs: object) -> dict:
    options: dict = {"enabled": True, "breaker_state": "closed"}
    options.update(kwargs)
    return stats.block(**options)


def test_fields_are_the_guides_in_its_order_then_the_extras() -> None:
    fields = list(block(Stats()))
    assert list(SPEC_FIELDS) == GUIDE_FIELDS
    assert fields == [*GUIDE_FIELDS, "sync_oversize_dropped", "sync_budget_dropped", "restore_timeout"]
    assert fields[len(GUIDE_FIELDS) :] == list(EXTRA_FIELDS)


def test_a_fresh_block() -> None:
    assert block(Stats()) == {
        "status": "healthy",
        "circuit_breaker": "closed",
        **{name: 0 for name in GUIDE_FIELDS[2:13]},
        "backend_last_ok_age_seconds": None,
        "backend_last_error": None,
        "sync_count": 0,
        "sync_bytes_total": 0,
        "sync_mb_total": 0.0,
        "restore_bytes_total": 0,
        "sync_keys_dropped": 0,
        "sync_kernels_dropped": 0,
        "sync_by_key": [],
        "sync_by_kernel": [],
        "sync_oversize_dropped": 0,
        "sync_budget_dropped": 0,
        "restore_timeout": 0,
    }


@pytest.mark.parametrize(
    ("enabled", "breaker_state", "status"),
    [
        (False, "closed", "off"),
        (False, "open", "off"),
        (True, "closed", "healthy"),
        (True, "open", "degraded"),
        (True, "half_open", "degraded"),
    ],
)
def test_status(enabled: bool, breaker_state: str, status: str) -> None:
    result = block(Stats(), enabled=enabled, breaker_state=breaker_state)
    assert (result["status"], result["circuit_breaker"]) == (status, breaker_state)


def test_status_is_degraded_from_the_first_failed_call_until_one_succeeds() -> None:
    stats = Stats()
    stats.backend_error("redis ping at redis://127.0.0.1:1/0 failed: ConnectionError")
    assert block(stats)["status"] == "degraded", "before the breaker has seen enough failures to open"
    stats.backend_ok()
    assert block(stats)["status"] == "healthy"


def test_counters_land_in_their_fields() -> None:
    stats = Stats()
    names = [*GUIDE_FIELDS[2:13], "restore_bytes_total", *EXTRA_FIELDS]
    for n, name in enumerate(names, start=1):
        stats.count(name, n)
    result = block(stats)
    assert [result[name] for name in names] == list(range(1, len(names) + 1))


def test_an_unknown_counter_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown counter 'restore_sucess'"):
        Stats().count("restore_sucess")


def test_backend_age_and_last_error() -> None:
    clock = FakeClock()
    stats = Stats(clock=clock)
    stats.backend_error("timeout after 300ms")
    assert block(stats)["backend_last_ok_age_seconds"] is None
    assert block(stats)["backend_last_error"] == "timeout after 300ms"
    stats.backend_ok()
    clock.now += 0.44
    result = block(stats)
    assert (result["backend_last_ok_age_seconds"], result["backend_last_error"]) == (0.4, None)
    stats.backend_error("connection refused")
    clock.now += 2.0
    result = block(stats)
    assert (result["backend_last_ok_age_seconds"], result["backend_last_error"]) == (
        2.4,
        "connection refused",
    )


def test_sync_totals_and_rows() -> None:
    stats = Stats()
    for _ in range(3):
        stats.synced("myapp.filters", "3308f3b8-aaaa", 300)
    stats.synced("myapp.page", "3308f3b8-aaaa", 40)
    stats.synced("myapp.page", "99999999-bbbb", 41)
    result = block(stats)
    assert (result["sync_count"], result["sync_bytes_total"], result["sync_mb_total"]) == (5, 981, 0.001)
    assert result["sync_by_key"] == [
        {"key": "myapp.filters", "syncs": 3, "bytes": 900, "bytes_per_sync": 300},
        {"key": "myapp.page", "syncs": 2, "bytes": 81, "bytes_per_sync": 40},
    ]
    assert result["sync_by_kernel"] == [
        {"kernel": "3308f3b8", "syncs": 4, "bytes": 940, "bytes_per_sync": 235},
        {"kernel": "99999999", "syncs": 1, "bytes": 41, "bytes_per_sync": 41},
    ]


def test_sync_mb_total_rounds_to_three_decimals() -> None:
    stats = Stats()
    stats.synced("k", "kernel", 1_264_499)
    assert block(stats)["sync_mb_total"] == 1.264
    assert isinstance(block(stats)["sync_by_key"][0]["bytes_per_sync"], int)


def test_top_ten_or_a_hundred_by_bytes() -> None:
    stats = Stats()
    for n in range(150):
        stats.synced(f"key.{n:03d}", f"k{n:07d}-rest-of-id", n + 1)
    short, verbose = block(stats), block(stats, verbose=True)
    assert [row["key"] for row in short["sync_by_key"]] == [f"key.{n:03d}" for n in range(149, 139, -1)]
    assert len(verbose["sync_by_key"]) == len(verbose["sync_by_kernel"]) == 100
    assert verbose["sync_by_kernel"][0] == {
        "kernel": "k0000149",
        "syncs": 1,
        "bytes": 150,
        "bytes_per_sync": 150,
    }


def test_tables_cap_at_500_labels_then_other() -> None:
    stats = Stats()
    for n in range(TABLE_LABELS):
        stats.synced(f"key.{n}", f"k{n:07d}", 1)
    assert block(stats)["sync_keys_dropped"] == 0
    for _ in range(3):  # the same overflowing labels again: counted as dropped once each
        for n in range(TABLE_LABELS, TABLE_LABELS + 20):
            stats.synced(f"key.{n}", f"k{n:07d}", 1000)
    stats.synced("key.0", "k0000000", 1)  # a known label still has its own row
    result = block(stats, verbose=True)
    assert (result["sync_keys_dropped"], result["sync_kernels_dropped"]) == (20, 20)
    assert result["sync_by_key"][0] == {"key": OTHER, "syncs": 60, "bytes": 60_000, "bytes_per_sync": 1000}
    assert result["sync_by_kernel"][0]["kernel"] == OTHER
    assert {"key": "key.0", "syncs": 2, "bytes": 2, "bytes_per_sync": 1} in result["sync_by_key"]
    assert result["sync_count"] == TABLE_LABELS + 61


def test_hidden_key_labels_are_hashed_but_other_and_kernels_stay() -> None:
    stats = Stats()
    stats.synced("user:4711:filters", "3308f3b8-aaaa", 10)
    for n in range(TABLE_LABELS):
        stats.synced(f"key.{n}", "3308f3b8-aaaa", 1)
    result = block(stats, reveal_keys=False, verbose=True)
    labels = [row["key"] for row in result["sync_by_key"]]
    assert labels[0] == hash_label("user:4711:filters"), "the same label hashes the same in this process"
    unsalted = hashlib.sha256(b"user:4711:filters").hexdigest()[:16]
    assert labels[0] != f"sha256:{unsalted}", "salted: a guessed identifier cannot be confirmed"
    assert OTHER in labels
    assert all(label == OTHER or label.startswith("sha256:") for label in labels)
    assert "4711" not in repr(result)
    assert result["sync_by_kernel"][0]["kernel"] == "3308f3b8"
    assert block(stats)["sync_by_key"][0]["key"] == "user:4711:filters"


def test_counting_is_thread_safe() -> None:
    stats = Stats()

    def work() -> None:
        for _ in range(2000):
            stats.count("flush_ok")
            stats.synced("k", "kernel", 3)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = block(stats)
    assert (result["flush_ok"], result["sync_count"], result["sync_bytes_total"]) == (16000, 16000, 48000)


# -- reveal_keys: the /resourcez token ------------------------------------------------------

TOKEN = "tok-0123456789abcdef"


@pytest.mark.parametrize(
    ("production", "token", "authorization", "revealed"),
    [
        (False, "", None, True),
        (False, TOKEN, "Bearer wrong", True),
        (True, TOKEN, f"Bearer {TOKEN}", True),
        (True, TOKEN, None, False),
        (True, TOKEN, "", False),
        (True, TOKEN, "Bearer wrong", False),
        (True, TOKEN, f"bearer {TOKEN}", False),
        (True, TOKEN, f"Bearer {TOKEN} ", False),
        (True, TOKEN, TOKEN, False),
        (True, "", "Bearer ", False),
        (True, "", None, False),
        (True, TOKEN, "Bearer ünïcødé \udc80 \ud800", False),  # never an error, whatever arrives
    ],
)
def test_reveal_keys(production: bool, token: str, authorization: str | None, revealed: bool) -> None:
    assert reveal_keys(production=production, token=token, authorization=authorization) is revealed
