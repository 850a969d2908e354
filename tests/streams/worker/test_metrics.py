"""/metrics as rendered from a worker's stats and cost events (no broker needed): names per
Prometheus conventions, histograms in seconds, cost counters summing what the events carry."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from reckon.streams.sink.consumer import SinkHealth
from reckon.streams.worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[3]


def _event(kind: str, lines: list[tuple[str, str, str, list[float]]], wall: float = 0.02) -> dict:
    """A cost event's wire form; latencies given in ms travel in whole microseconds."""
    return {"kind": kind, "usage": {"wall_seconds": wall},
            "lines": [{"tenant": t, "model_version": v, "cost": {"total": total},
                       "latencies_us": [round(ms * 1000) for ms in lat]} for t, v, total, lat in lines]}


def _metrics() -> WorkerMetrics:
    m = WorkerMetrics(Counter({"valid": 7, "invalid:not_json": 2, "sink_errors": 3, "recommendations": 5}),
                      "w1", "all", "1.2.3")
    m.set_models("cpu", {"primary": "v1", "challenger": "v2"})
    m.lag = lambda: {("clicks", 0): 12, ("searches", 1): 0}
    m.sink = lambda: SinkHealth({("cost-events", 2): 40}, buffered_rows=9, oldest_unwritten_age_s=75.0,
                                last_flush_at=time.time() - 300)
    m.observe_cost_event(_event("workload", [("acme", "v1", "0.000100000000", [1.0, 5.0, 30.0]),
                                             ("acme", "v2", "0.000050000000", [10.0])]))
    m.observe_cost_event(_event("workload", [("acme", "v1", "0.000200000000", [2.5])]))
    m.observe_cost_event(_event("idle", [("", "", "0.010000000000", [])]))
    return m


def _samples(m: WorkerMetrics) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def test_latency_histogram_is_cumulative_in_seconds_by_model_version() -> None:
    s = _samples(_metrics())
    bucket = "reckon_recommendation_latency_seconds_bucket"
    v1 = {"worker": "w1", "model_version": "v1"}
    # v1 saw 1, 2.5, 5 and 30 ms; `le` buckets include a value equal to the bound (2.5 ms)
    assert s[(bucket, frozenset({**v1, "le": "0.001"}.items()))] == 1
    assert s[(bucket, frozenset({**v1, "le": "0.0025"}.items()))] == 2
    assert s[(bucket, frozenset({**v1, "le": "0.005"}.items()))] == 3
    assert s[(bucket, frozenset({**v1, "le": "0.025"}.items()))] == 3
    assert s[(bucket, frozenset({**v1, "le": "+Inf"}.items()))] == 4
    assert s[("reckon_recommendation_latency_seconds_count", frozenset(v1.items()))] == 4
    assert abs(s[("reckon_recommendation_latency_seconds_sum", frozenset(v1.items()))] - 0.0385) < 1e-9
    assert s[("reckon_recommendation_latency_seconds_count", frozenset({"worker": "w1", "model_version": "v2"}.items()))] == 1
    assert s[("reckon_batch_duration_seconds_count", frozenset({"worker": "w1"}.items()))] == 2


def test_cost_counters_sum_what_the_cost_events_carry() -> None:
    s = _samples(_metrics())

    def cost(tenant: str, version: str, kind: str) -> float:
        labels = {"worker": "w1", "tenant": tenant, "model_version": version, "kind": kind}
        return s[("reckon_cost_usd_total", frozenset(labels.items()))]

    assert abs(cost("acme", "v1", "workload") - 0.0003) < 1e-12
    assert abs(cost("acme", "v2", "workload") - 0.00005) < 1e-12
    assert abs(cost("", "", "idle") - 0.01) < 1e-12


def test_lag_sink_health_model_info_and_process_metrics() -> None:
    s = _samples(_metrics())
    assert s[("reckon_consumer_lag", frozenset({"worker": "w1", "topic": "clicks", "partition": "0"}.items()))] == 12
    assert s[("reckon_sink_backlog", frozenset({"worker": "w1", "topic": "cost-events", "partition": "2"}.items()))] == 40
    assert s[("reckon_sink_oldest_unwritten_age_seconds", frozenset({"worker": "w1"}.items()))] == 75.0
    assert s[("reckon_sink_errors_total", frozenset({"worker": "w1", "kind": "stalled"}.items()))] == 3
    assert s[("reckon_dead_letters_total", frozenset({"worker": "w1", "reason": "not_json"}.items()))] == 2
    info = {"worker": "w1", "model_version": "v2", "device": "cpu", "slot": "challenger"}
    assert s[("reckon_model_info", frozenset(info.items()))] == 1
    assert s[("reckon_build_info", frozenset({"worker": "w1", "version": "1.2.3", "role": "all"}.items()))] == 1
    names = {name for name, _ in s}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    assert not any(n.endswith("_created") for n in names)


def test_names_follow_prometheus_conventions() -> None:
    m = _metrics()
    for family in text_string_to_metric_families(m.render().decode()):
        if not family.name.startswith("reckon_"):
            continue
        assert re.fullmatch(r"reckon_[a-z0-9_]+", family.name)
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


def test_alert_rules_only_use_exported_metrics() -> None:
    exported = {name for name, _ in _samples(_metrics())}
    rules = yaml.safe_load((ROOT / "infra" / "prometheus" / "rules.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        for name in re.findall(r"\breckon_[a-z_]+", rule["expr"]):
            assert name in exported, f"{rule['alert']} uses {name}, which /metrics does not export"
