"""Prometheus exposition of a worker's counters (GET /metrics on the worker's web port)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class StatsCollector:
    """Reads the worker's live stats mapping at scrape time: no second set of counters."""

    def __init__(self, stats: Mapping[str, float], worker: str) -> None:
        self.stats = stats
        self.worker = worker

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        events = CounterMetricFamily("reckon_events", "Events consumed, by outcome",
                                     labels=["worker", "outcome"])
        dead = CounterMetricFamily("reckon_dead_letters", "Events dead-lettered, by reason",
                                   labels=["worker", "reason"])
        candidates = CounterMetricFamily("reckon_candidates", "Candidates scored (per scored row), by source",
                                         labels=["worker", "source"])
        for key, value in self.stats.items():
            prefix, _, rest = key.partition(":")
            if prefix == "invalid":
                dead.add_metric([self.worker, rest], value)
            elif prefix == "candidate":
                candidates.add_metric([self.worker, rest], value)
        for outcome in ("valid", "duplicate"):
            events.add_metric([self.worker, outcome], self.stats.get(outcome, 0))
        events.add_metric([self.worker, "dead_letter"],
                          sum(v for k, v in self.stats.items() if k.startswith("invalid:")))
        yield events
        yield dead
        yield candidates
        for name, help_text in (("recommendations", "Recommendations published"),
                                ("scored_rows", "Model rows scored (one per user per batch and model version)"),
                                ("batches", "Micro-batches processed"),
                                ("cost_events_sent", "Cost events emitted"),
                                ("cost_rows_written", "Cost rows inserted into ClickHouse"),
                                ("state_bytes_written", "User-state bytes written (RocksDB and changelog)")):
            metric = CounterMetricFamily(f"reckon_{name}", help_text, labels=["worker"])
            metric.add_metric([self.worker], self.stats.get(name, 0))
            yield metric


def render(stats: Mapping[str, float], worker: str) -> bytes:
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, worker))
    return generate_latest(registry)
