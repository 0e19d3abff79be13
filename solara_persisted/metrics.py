"""``/metrics``: the ``/resourcez`` state block's numbers in Prometheus' text format.

Read from the in-process counters (``stats.py``) at scrape time, so a scrape never touches the
backend and costs the same whether Redis is up or down. Key labels are hashed in production
unless the scrape carries the ``/resourcez`` token, exactly as on ``/resourcez``; kernels get no
label at all (one series per session would churn without bound: their table stays on
``/resourcez``). The families are built per scrape in a private registry, never the
prometheus-client default one, so an app's own metrics and ours never collide.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .events import FlushResult, RestoreResult, Transition
from .stats import Distribution, Snapshot, health, shown_label

if TYPE_CHECKING:
    from .engine import Engine

#: The ``Content-Type`` of a scrape's answer: the text format every Prometheus 2.x parses (our
#: names are all legacy-valid, so the output is the same in both text versions).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
PREFIX = "solara_state_"
#: The state block's counters behind each labelled family: label value -> counter name.
RESTORES = {
    RestoreResult.SUCCESS: "restore_success",
    RestoreResult.MISS: "restore_miss",
    RestoreResult.BAILOUT: "restore_bailout",
    RestoreResult.FRESH_SCHEMA: "restore_schema_reset",
    RestoreResult.TIMEOUT: "restore_timeout",
}
FLUSHES = {FlushResult.OK: "flush_ok", FlushResult.REJECTED: "flush_rejected", FlushResult.ERROR: "flush_failures"}
DROPPED = {"oversize": "sync_oversize_dropped", "budget": "sync_budget_dropped"}
STATUSES = ("off", "healthy", "degraded")
#: Histograms: stats name -> (family name, help).
HISTOGRAMS = {
    "restore_seconds": ("restore_duration_seconds", "Restores (takeovers) that called the backend, by duration."),
    "flush_seconds": ("flush_duration_seconds", "Batched fenced writes (one round trip), by duration."),
    "envelope_bytes": ("envelope_bytes", "Acknowledged field writes, by envelope size in bytes."),
}


def render(engine: Engine, *, authorization: str | None = None, draining: bool = False) -> bytes:
    """One scrape's answer: every family, read from ``engine``'s counters at this instant."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(engine, reveal=engine.reveals_keys(authorization), draining=draining))
    return generate_latest(registry)


class _Scrape:
    """A one-shot collector: the families of one snapshot."""

    def __init__(self, engine: Engine, *, reveal: bool, draining: bool) -> None:
        self.engine = engine
        self.reveal = reveal
        self.draining = draining

    def collect(self) -> Iterator[Metric]:
        taken = self.engine.stats.snapshot()
        yield from _counters(taken, self.reveal)
        yield from _gauges(self.engine, taken, self.draining)
        for name, (family, text) in HISTOGRAMS.items():
            yield _histogram(PREFIX + family, text, taken.distributions[name])


def _counters(taken: Snapshot, reveal: bool) -> Iterator[Metric]:
    counts = taken.counts
    yield _labelled("restores", "Restore attempts, by result.", "result", RESTORES, counts)
    yield _labelled("flushes", "Fenced writes of one session's batch, by result.", "result", FLUSHES, counts)
    transitions = CounterMetricFamily(
        PREFIX + "breaker_transitions", "Circuit-breaker transitions, by the state entered.", labels=["to"]
    )
    for state in Transition:
        transitions.add_metric([state.value], taken.transitions.get(state.value, 0))
    yield transitions
    yield _plain("superseded_closes", "Kernels closed because another instance took their session over.",
                 counts["superseded_closes"])
    yield _plain(
        "superseded_while_connected",
        "Supersessions while the page was still connected here: broken stickiness, multi-tab or an attack.",
        counts["superseded_while_connected"],
    )
    yield _plain("synced_fields", "Field writes the backend acknowledged.", taken.sync_count)
    yield _plain("synced_bytes", "Envelope bytes of acknowledged field writes.", taken.sync_bytes)
    yield _plain("restored_bytes", "Envelope bytes read back by restores.", counts["restore_bytes_total"])
    yield _labelled("dropped_values", "Values not written: over the hard cap, or over the session's budget.",
                    "reason", DROPPED, counts)
    labels_dropped = CounterMetricFamily(
        PREFIX + "table_labels_dropped",
        "Labels folded into '(other)' because a sync table was full (500 labels).",
        labels=["table"],
    )
    labels_dropped.add_metric(["key"], taken.keys_dropped)
    labels_dropped.add_metric(["kernel"], taken.kernels_dropped)
    yield labels_dropped
    fields = CounterMetricFamily(
        PREFIX + "key_synced_fields", "Acknowledged field writes per persisted key.", labels=["key"]
    )
    nbytes = CounterMetricFamily(
        PREFIX + "key_synced_bytes", "Envelope bytes of acknowledged writes per persisted key.", labels=["key"]
    )
    for label, syncs, size in taken.by_key:
        shown = shown_label(label, reveal)
        fields.add_metric([shown], syncs)
        nbytes.add_metric([shown], size)
    yield fields
    yield nbytes


def _gauges(engine: Engine, taken: Snapshot, draining: bool) -> Iterator[Metric]:
    breaker_state = engine.breaker.state
    current = health(enabled=engine.settings.enabled, breaker_state=breaker_state, last_error=taken.last_error)
    status = GaugeMetricFamily(PREFIX + "status", "1 for the state block's current status.", labels=["status"])
    for name in STATUSES:
        status.add_metric([name], float(name == current))
    yield status
    breaker = GaugeMetricFamily(PREFIX + "breaker_state", "1 for the circuit breaker's state.", labels=["state"])
    for state in Transition:
        breaker.add_metric([state.value], float(state.value == breaker_state))
    yield breaker
    age = math.nan if taken.last_ok_age is None else taken.last_ok_age
    yield GaugeMetricFamily(
        PREFIX + "backend_last_ok_age_seconds", "Seconds since a backend call last succeeded (NaN: none yet).",
        value=age,
    )
    rings = engine.fleet_key_rings()
    yield GaugeMetricFamily(
        PREFIX + "fleet_key_rings", "Distinct key-ring fingerprints the fleet's instances published.",
        value=len(rings),
    )
    yield GaugeMetricFamily(
        PREFIX + "key_ring_mismatch", "1 when instances sign with different key rings.", value=float(len(rings) > 1)
    )
    yield GaugeMetricFamily(
        PREFIX + "draining", "1 once a pre-stop drain began: not ready, sessions handed on.", value=float(draining)
    )


def _labelled(name: str, text: str, label: str, counters: dict, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(PREFIX + name, text, labels=[label])
    for value, counter in counters.items():
        family.add_metric([str(value)], counts[counter])
    return family


def _plain(name: str, text: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, text, value=value)


def _histogram(name: str, text: str, distribution: Distribution) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound, count in zip((*distribution.bounds, math.inf), distribution.counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), cumulative))
    return HistogramMetricFamily(name, text, buckets=buckets, sum_value=distribution.total)
