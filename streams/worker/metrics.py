"""Prometheus exposition of one worker (GET /metrics on its web port), in its own registry.

Counters are read from the worker's live stats mapping at scrape time (no second set of
counters); histograms and cost counters are fed from the cost events the worker emits, so
they count exactly what those events carry; lag and sink health are read at scrape time.
Every metric has a `worker` label (RECKON_WORKER_NAME).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4"   # aiohttp adds the charset
# Event produced -> recommendation published: the design's bar is p99 <= 25 ms.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# stats key -> (metric name without _total, help)
STAT_COUNTERS = {
    "recommendations": ("reckon_recommendations", "Recommendations published"),
    "scored_rows": ("reckon_scored_rows", "Model rows scored (one per user per batch and model version)"),
    "batches": ("reckon_batches", "Micro-batches processed"),
    "record_ts_replaced": ("reckon_record_timestamps_replaced", "Triggering records whose Kafka timestamp was "
                           "before their event's ts (past the tolerated skew) or after they were read: their "
                           "latency runs from the event's ts"),
    "cost_events_sent": ("reckon_cost_events_sent", "Cost events emitted"),
    "cost_rows_written": ("reckon_cost_rows_written", "Cost rows inserted into ClickHouse by this worker's sink"),
    "state_bytes_written": ("reckon_state_written_bytes", "User-state bytes written (RocksDB and changelog)"),
    "sink_flushes": ("reckon_sink_flushes", "Sink inserts committed"),
    "alert_errors": ("reckon_alert_errors", "Alert evaluations that failed"),
    "cost_events_dead_lettered": ("reckon_cost_events_dead_lettered", "Cost events the sink dead-lettered"),
    "model_versions_rejected": ("reckon_model_versions_rejected", "Promoted model versions refused (checksum, "
                                "load or test score failed); the previous one kept serving"),
}
# stats key -> the `kind` label of reckon_sink_errors_total
SINK_ERRORS = {"sink_retries": "unavailable", "sink_errors": "stalled", "sink_commit_failed": "commit_failed"}


class LatencyHistogram:
    """A labelled histogram observed a whole batch at a time (one numpy call, not one
    `observe` per recommendation, so it stays off the hot path's profile)."""

    def __init__(self, name: str, documentation: str, label: str, buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.bounds = np.asarray(buckets, dtype=np.float64)
        self.counts: dict[str, np.ndarray] = {}
        self.sums: dict[str, float] = {}

    def observe_many(self, label_value: str, values: list[float] | np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if not values.size:
            return
        # side="left": a value equal to a bound counts in that bound's bucket (Prometheus' `le`)
        counts = np.bincount(np.searchsorted(self.bounds, values, side="left"), minlength=self.bounds.size + 1)
        self.counts[label_value] = self.counts.get(label_value, 0) + counts
        self.sums[label_value] = self.sums.get(label_value, 0.0) + float(values.sum())

    def family(self, worker: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["worker", self.label])
        for value, counts in sorted(self.counts.items()):
            cumulative = np.cumsum(counts).tolist()
            buckets = [(repr(float(b)), c) for b, c in zip(self.bounds.tolist(), cumulative)]
            family.add_metric([worker, value], buckets + [("+Inf", cumulative[-1])], self.sums[value])
        return family


class WorkerMetrics:
    """Everything GET /metrics shows for one worker."""

    def __init__(self, stats: Mapping[str, Any], worker: str, role: str, version: str) -> None:
        self.stats = stats
        self.worker = worker
        disable_created_metrics()   # no `_created` series beside every counter and histogram
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.latency = LatencyHistogram(
            "reckon_recommendation_latency_seconds",
            "Event produced to Kafka -> its recommendation built, by model version", "model_version",
            LATENCY_BUCKETS_S)
        self.batch_seconds = Histogram(
            "reckon_batch_duration_seconds", "Wall time of one scored micro-batch (as its cost event measures it)",
            ["worker"], buckets=BATCH_BUCKETS_S, registry=self.registry).labels(worker)
        self.cost_usd = Counter(
            "reckon_cost_usd", "Cost carried by the cost events this worker emitted, USD, by tenant, model "
            "version and kind (workload, idle, shared)", ["worker", "tenant", "model_version", "kind"],
            registry=self.registry)
        self.model_info = Gauge("reckon_model_info", "1 for each model version this worker scores with",
                                ["worker", "model_version", "device", "slot"], registry=self.registry)
        Gauge("reckon_build_info", "1, labelled with the running Reckon version and role",
              ["worker", "version", "role"], registry=self.registry).labels(worker, version, role).set(1)
        self.registry.register(_Collector(self))
        self.lag: Callable[[], Mapping[tuple[str, int], int]] | None = None
        self.sink: Callable[[], Any] | None = None    # -> reckon.streams.sink.consumer.SinkHealth

    def set_models(self, device: str, models: Mapping[str, str]) -> None:
        """`models`: slot (primary, challenger) -> version; replaces what was shown before."""
        self.model_info.clear()
        for slot, version in models.items():
            self.model_info.labels(self.worker, version, device, slot).set(1)

    def observe_cost_event(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("kind", ""))
        for line in event.get("lines", ()):
            total = Decimal(str(line["cost"]["total"]))
            if total > 0:
                self.cost_usd.labels(self.worker, line["tenant"], line["model_version"], kind).inc(float(total))
            if line.get("latencies_us"):
                self.latency.observe_many(line["model_version"], np.asarray(line["latencies_us"]) / 1e6)
        if kind == "workload":
            self.batch_seconds.observe(float(event["usage"]["wall_seconds"]))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Collector:
    """The scrape-time part: stats counters, lag, sink health, the latency histogram."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Any]:
        stats, worker = self.m.stats, self.m.worker
        yield from _event_counters(stats, worker)
        for key, (name, help_text) in STAT_COUNTERS.items():
            metric = CounterMetricFamily(name, help_text, labels=["worker"])
            metric.add_metric([worker], stats.get(key, 0))
            yield metric
        errors = CounterMetricFamily("reckon_sink_errors", "Sink failures, by kind (unavailable: retried; "
                                     "stalled: ClickHouse failing, offsets held; messages it cannot store "
                                     "are dead letters)",
                                     labels=["worker", "kind"])
        for key, kind in SINK_ERRORS.items():
            errors.add_metric([worker, kind], stats.get(key, 0))
        yield errors
        yield self.m.latency.family(worker)
        if self.m.lag is not None:
            lag = GaugeMetricFamily("reckon_consumer_lag", "Records behind the end of each assigned partition "
                                    "(high watermark minus the next offset to handle)",
                                    labels=["worker", "topic", "partition"])
            for (topic, partition), behind in sorted(self.m.lag().items()):
                lag.add_metric([worker, topic, str(partition)], behind)
            yield lag
        if self.m.sink is not None:
            yield from _sink_families(self.m.sink(), stats, worker)


def _event_counters(stats: Mapping[str, Any], worker: str) -> Iterator[Any]:
    events = CounterMetricFamily("reckon_events", "Events consumed, by outcome", labels=["worker", "outcome"])
    dead = CounterMetricFamily("reckon_dead_letters", "Records dead-lettered, by reason (each reason names one "
                               "stage: streams/pipeline/dead_letters.py)", labels=["worker", "reason"])
    candidates = CounterMetricFamily("reckon_candidates", "Candidates scored (per scored row), by source",
                                     labels=["worker", "source"])
    for key, value in stats.items():
        prefix, _, rest = key.partition(":")
        if prefix in ("invalid", "sink_dead"):
            dead.add_metric([worker, rest], value)
        elif prefix == "candidate":
            candidates.add_metric([worker, rest], value)
    for outcome in ("valid", "duplicate"):
        events.add_metric([worker, outcome], stats.get(outcome, 0))
    events.add_metric([worker, "dead_letter"], sum(v for k, v in stats.items() if k.startswith("invalid:")))
    yield from (events, dead, candidates)


def _sink_families(health: Any, stats: Mapping[str, Any], worker: str) -> Iterator[Any]:
    backlog = GaugeMetricFamily("reckon_sink_backlog", "Messages in Kafka the sink has not stored yet, "
                                "per partition", labels=["worker", "topic", "partition"])
    for (topic, partition), behind in sorted(health.backlog.items()):
        backlog.add_metric([worker, topic, str(partition)], behind)
    yield backlog
    yield _gauge("reckon_sink_buffered_rows", "Rows waiting for their insert", worker, health.buffered_rows)
    yield _gauge("reckon_sink_oldest_unwritten_age_seconds", "How long the oldest buffered row has waited "
                 "(grows while the sink is stalled)", worker, health.oldest_unwritten_age_s)
    if health.last_flush_at is not None:
        yield _gauge("reckon_sink_last_flush_timestamp_seconds", "Unix time of the last insert and commit",
                     worker, health.last_flush_at)
        yield _gauge("reckon_sink_freshness_seconds", "At the last flush: newest stored message's timestamp "
                     "-> stored", worker, stats.get("sink_freshness_ms", 0) / 1000.0)


def _gauge(name: str, help_text: str, worker: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=["worker"])
    family.add_metric([worker], value)
    return family
