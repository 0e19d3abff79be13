"""``/metrics``: the state block's numbers in Prometheus' format, parsed back by prometheus-client's parser."""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from solara_persisted.config import Settings
from solara_persisted.engine import Engine
from solara_persisted.events import FlushResult, RestoreResult, Transition
from solara_persisted.metrics import render
from solara_persisted.stats import HISTOGRAMS, hash_label

TOKEN = secrets.token_urlsafe(32)


def engine(**overrides: Any) -> Engine:
    options: dict[str, Any] = {"production": False, **overrides}
    settings = Settings(backend="memory", secret_keys=(secrets.token_urlsafe(32),), **options)
    return Engine(settings)


def scrape(subject: Engine, **kwargs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape: (name, sorted labels) -> value."""
    text = render(subject, **kwargs).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_counters_are_the_state_blocks() -> None:
    subject = engine(breaker_failures=1)
    events = subject.events
    for result, n in ((RestoreResult.SUCCESS, 3), (RestoreResult.MISS, 2), (RestoreResult.BAILOUT, 1)):
        for _ in range(n):
            events.restore(result, "k" * 36, nbytes=10)
    events.flush(FlushResult.OK, "k", 2)
    events.flush(FlushResult.REJECTED, "k", 1)
    events.synced("shop.cart", "k" * 36, 300)
    subject.breaker.failure("the link is cut")  # opens it
    events.breaker(Transition.HALF_OPEN, "counted by kind")
    subject.stats.count("superseded_while_connected")
    subject.stats.count("sync_oversize_dropped", 4)
    block, samples = subject.state_block(), scrape(subject)

    def one(name: str, **labels: str) -> float:
        return samples[("solara_state_" + name, tuple(sorted(labels.items())))]

    assert one("restores_total", result="success") == block["restore_success"] == 3
    assert one("restores_total", result="miss") == block["restore_miss"] == 2
    assert one("restores_total", result="bailout") == block["restore_bailout"] == 1
    assert one("restores_total", result="fresh-schema") == one("restores_total", result="timeout") == 0
    assert sum(v for (name, _), v in samples.items() if name == "solara_state_restores_total") == block[
        "restore_attempts"
    ]
    assert one("flushes_total", result="ok") == block["flush_ok"] == 1
    assert one("flushes_total", result="rejected") == block["flush_rejected"] == 1
    assert one("breaker_transitions_total", to="open") == one("breaker_transitions_total", to="half_open") == 1
    assert block["breaker_transitions"] == 2
    assert one("superseded_while_connected_total") == 1
    assert one("synced_fields_total") == block["sync_count"] == 1
    assert one("synced_bytes_total") == block["sync_bytes_total"] == 300
    assert one("restored_bytes_total") == block["restore_bytes_total"] == 60
    assert one("dropped_values_total", reason="oversize") == 4
    assert one("key_synced_bytes_total", key="shop.cart") == 300, "outside production, raw labels"
    assert one("breaker_state", state="open") == 1 and one("breaker_state", state="closed") == 0
    assert one("status", status="degraded") == 1
    assert one("draining") == 0
    assert not any(name.startswith("solara_state_") and "kernel" in dict(labels) for name, labels in samples)


def test_histograms_count_what_was_observed() -> None:
    subject = engine()
    subject.events.synced("a.b", "k", 100)
    subject.events.synced("a.b", "k", 5000)
    subject.events.timed("flush_seconds", 0.003)
    samples = scrape(subject)
    assert samples[("solara_state_envelope_bytes_count", ())] == 2
    assert samples[("solara_state_envelope_bytes_sum", ())] == 5100
    assert samples[("solara_state_envelope_bytes_bucket", (("le", "256.0"),))] == 1
    assert samples[("solara_state_envelope_bytes_bucket", (("le", "+Inf"),))] == 2
    assert samples[("solara_state_flush_duration_seconds_bucket", (("le", "0.0025"),))] == 0
    assert samples[("solara_state_flush_duration_seconds_bucket", (("le", "0.005"),))] == 1
    assert samples[("solara_state_restore_duration_seconds_count", ())] == 0
    with pytest.raises(KeyError, match="unknown histogram 'flush_secs'"):
        subject.events.timed("flush_secs", 1.0)
    assert set(HISTOGRAMS) == {"restore_seconds", "flush_seconds", "envelope_bytes"}


def test_a_restore_is_timed_and_a_skipped_one_is_not() -> None:
    subject = engine()
    subject.restore(str(__import__("uuid").uuid4()), secrets.token_urlsafe(16))
    subject.restore("not a kernel id", secrets.token_urlsafe(16))  # refused: no backend call
    assert scrape(subject)[("solara_state_restore_duration_seconds_count", ())] == 1


@pytest.mark.parametrize(
    ("authorization", "shown"),
    [(None, hash_label("user:42:filters")), ("Bearer wrong", hash_label("user:42:filters")),
     (f"Bearer {TOKEN}", "user:42:filters")],
)
def test_key_labels_are_hashed_in_production_unless_the_scrape_has_the_token(
    authorization: str | None, shown: str
) -> None:
    subject = engine(production=True, resourcez_token=TOKEN)
    subject.events.synced("user:42:filters", "k", 10)
    samples = scrape(subject, authorization=authorization)
    assert samples[("solara_state_key_synced_fields_total", (("key", shown),))] == 1
    block = subject.state_block(authorization=authorization)
    assert block["sync_by_key"][0]["key"] == shown, "the same label as on /resourcez"


def test_a_scrape_never_calls_the_backend() -> None:
    """Redis is unreachable (a closed port): a scrape answers at once and records no backend call."""
    settings = Settings(
        backend="redis",
        url="redis://127.0.0.1:9/0",
        secret_keys=(secrets.token_urlsafe(32),),
        connect_timeout=2.0,
    )
    subject = Engine(settings)
    started = time.perf_counter()
    samples = scrape(subject)
    assert time.perf_counter() - started < 1.0
    assert math.isnan(samples[("solara_state_backend_last_ok_age_seconds", ())])
    assert subject.state_block()["backend_last_error"] is None, "nothing was called, so nothing failed"
    assert samples[("solara_state_status", (("status", "healthy"),))] == 1


def test_draining_is_shown() -> None:
    assert scrape(engine(), draining=True)[("solara_state_draining", ())] == 1
