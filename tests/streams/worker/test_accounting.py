"""Cost accounting through a real worker: identity, reading through the store owner, kill -9.

The worker is a child process that owns its own chdb store (this pytest process holds the
session store, and chdb opens one per process), so ClickHouse is read through the worker's
`GET /costs`, through `reckon costs` in a child process, or by a child reader after it stops.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from reckon.streams.cli.costs import fetch_over_http
from reckon.streams.reports.report import ReportRequest
from reckon.streams.traffic.generator import TrafficGenerator
from reckon.streams.traffic.replay import produce

from ..conftest import wait_for
from ..kafka_io import read_topic, unanswered_users

pytestmark = pytest.mark.integration

PRICES = {"vcpu_hour": "0.036", "gb_ram_hour": "0.0072", "state_gb_month": "0.73", "kafka_gb_in": "0.5",
          "kafka_gb_out": "0.9", "clickhouse_gb_month": "0.05", "people_hour": "1.8", "ops_hour": "0.36"}
VCPUS, RAM_GB = 4, 2      # 4 reserved vCPUs on a 2-core machine: batches never use more than reserved

# Cost rows per batch as stored (the sink's ClickHouse storage rows apart: they come from no
# cost event), and the storage rows' totals by kind.
READ_STORE = """
import json, sys
from reckon.streams.clickhouse.client import connect
ch = connect(sys.argv[1])
rows = ch.query("SELECT batch_id, count(), sum(cost_usd) FROM cost_events "
                "WHERE NOT startsWith(event_type, 'clickhouse:') GROUP BY batch_id")
storage = ch.query("SELECT kind, count(), uniqExact(event_id), sum(cost_usd), sum(clickhouse_bytes) FROM cost_events "
                   "WHERE startsWith(event_type, 'clickhouse:') GROUP BY kind")
print(json.dumps({"batches": {b: [n, str(usd)] for b, n, usd in rows},
                  "storage": {k: [n, ids, str(usd), size] for k, n, ids, usd, size in storage}}))
"""


def _sheet(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    body = "\n".join(f"{k} = {v}" for k, v in PRICES.items())
    path.write_text(f'version = "identity-test"\n[[prices]]\neffective_from = "2026-01-01T00:00:00Z"\n{body}\n')
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    return {"RECKON_PRICE_SHEET": str(_sheet(tmp_path)), "RECKON_COST_INTERVAL_S": "1",
            "RECKON_RESERVED_VCPUS": str(VCPUS), "RECKON_RESERVED_RAM_GB": str(RAM_GB),
            "RECKON_SINK_FLUSH_MS": "100", "RECKON_ALERT_INTERVAL_S": "2"}


def _independent(events: list[dict]) -> tuple[Decimal, Decimal]:
    """(workload, total) of the cost events from the wire quantities alone, without
    reckon.streams.costs.pricing.

    Workload per batch: CPU-s x vCPU-hour + GB-RAM x wall x RAM-hour (compute), state GB for
    its wall time + Kafka GB in/out (storage); no people or ops (shared cost). Total: every
    interval's seconds at the full reservation's hourly price, people and ops included, plus
    the batches' storage (the only cost not reserved), since no batch used more than was
    reserved."""
    p = {k: Decimal(v) for k, v in PRICES.items()}
    hour, gb = Decimal(3600), Decimal(10**9)
    workload = storage = Decimal(0)
    reserved_seconds = Decimal(0)
    for event in events:
        u = {k: Decimal(repr(v)) for k, v in event["usage"].items()}
        if event["kind"] == "workload":
            batch_storage = (u["state_bytes"] / gb * p["state_gb_month"] * u["wall_seconds"] / hour / 730
                             + u["bytes_in"] / gb * p["kafka_gb_in"] + u["bytes_out"] / gb * p["kafka_gb_out"])
            workload += (u["cpu_seconds"] * p["vcpu_hour"] + u["ram_gb"] * u["wall_seconds"] * p["gb_ram_hour"]
                         ) / hour + batch_storage
            storage += batch_storage
        elif event["kind"] == "idle":
            reserved_seconds += Decimal(repr(event["interval"]["seconds"]))
    per_hour = VCPUS * p["vcpu_hour"] + RAM_GB * p["gb_ram_hour"] + p["people_hour"] + p["ops_hour"]
    return workload, reserved_seconds * per_hour / hour + storage


def _sent_and_sunk(worker) -> dict | None:
    stats = worker.stats() or {}
    return stats if stats.get("cost_events_sent") and stats.get("cost_events_sunk") == stats["cost_events_sent"] \
        else None


def _costs_cli(dsn: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECKON_")} | {"RECKON_CLICKHOUSE_DSN": dsn}
    out = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", "--json", *args], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_identity_after_a_replay_and_reading_through_the_owner(workers, fresh_broker, tmp_path) -> None:
    worker = workers.start("acct", data_dir=tmp_path / "acct", **_env(tmp_path))
    dsn = f"chdb://{tmp_path / 'acct' / 'clickhouse'}"
    sent = asyncio.run(produce(fresh_broker.bootstrap_servers, TrafficGenerator(seed=21).records(1500)))
    wait_for(lambda: (worker.stats() or {}).get("consumed", 0) >= sent["sent"], what="events consumed")
    time.sleep(1.5)                                     # let the last batches' interval close
    stats = wait_for(lambda: _sent_and_sunk(worker), what="cost events in ClickHouse")

    # While it runs (interval rows keep arriving, so no two queries see the same snapshot):
    report = fetch_over_http(f"http://127.0.0.1:{worker.web_port}", ReportRequest(hours=1))
    totals = report["totals"]
    assert Decimal(totals["workload_cost_usd"]) + Decimal(totals["idle_cost_usd"]) \
        + Decimal(totals["shared_cost_usd"]) == Decimal(totals["total_cost_usd"])
    assert totals["recommendations"] == stats["recommendations"]
    (scored,) = report["by_version"]                                       # no nameless version
    assert scored["model_version"] == stats["model_version"] and scored["attributed_cost_per_1k_usd"] is not None
    for params, error in (({"hours": "-1"}, "bad query parameter"), ({"sql": "DROP TABLE prices"}, "unknown"),
                          ({"sheet_version": "nope"}, "no such sheet version")):
        response = httpx.get(f"http://127.0.0.1:{worker.web_port}/costs", params=params, timeout=10)
        assert response.status_code == 400 and error in response.json()["error"]
    # `reckon costs` finds the store held and asks its holder (no --url needed).
    via_owner = _costs_cli(dsn, "--hours", "1")
    assert via_owner["source"] == f"http://127.0.0.1:{worker.web_port}"
    assert {v["model_version"] for v in via_owner["by_version"]} == {v["model_version"] for v in report["by_version"]}

    sent_before_stop = (worker.stats() or {})["cost_events_sent"]
    assert worker.stop() == 0
    # Stopped: the last partial interval was emitted and drained before the store closed, and
    # `reckon costs` now opens the store itself. Everything below reads one stable store.
    events = [json.loads(m.value) for m in read_topic(fresh_broker.bootstrap_servers, "cost-events",
                                                      sent_before_stop + 2, timeout_s=15)]
    direct = _costs_cli(dsn, "--hours", "1", "--audit")
    assert direct["source"].startswith("store chdb://")
    totals, audit = direct["totals"], direct["audit"]
    total = Decimal(totals["total_cost_usd"])
    out = subprocess.run([sys.executable, "-c", READ_STORE, dsn], capture_output=True, text=True, timeout=120,
                         check=True)
    read = json.loads(out.stdout.strip().splitlines()[-1])
    storage = {kind: Decimal(row[2]) for kind, row in read["storage"].items()}
    assert sum(row["bytes"] for row in direct["clickhouse"]) > 0 and storage.get("workload", 0) > 0
    # every cost event once, plus what the sink measured it wrote to ClickHouse
    assert total == sum((Decimal(e["cost"]["total"]) for e in events), Decimal(0)) + sum(storage.values())
    workload, independent_total = _independent(events)
    assert abs(Decimal(totals["workload_cost_usd"]) - storage["workload"] - workload) / workload < Decimal("0.001")
    assert abs(total - sum(storage.values()) - independent_total) / independent_total < Decimal("0.001")
    assert Decimal(totals["workload_cost_usd"]) + Decimal(totals["idle_cost_usd"]) \
        + Decimal(totals["shared_cost_usd"]) == total
    assert sum(Decimal(row["attributed_cost_usd"]) for row in direct["by_tenant"]) == total   # no nameless tenant
    assert totals["idle_share"] > 0.5                 # 4 vCPUs reserved on 2 cores, mostly waiting for events
    assert Decimal(audit["raw_usd"]) == Decimal(audit["minute_usd"]) == Decimal(audit["hour_usd"]) == total
    assert audit["raw_rows"] == audit["stored_rows"] == audit["distinct_ids"] == audit["minute_rows"]


def test_worker_killed_mid_batch_and_restarted_loses_and_doubles_nothing(workers, fresh_broker, tmp_path) -> None:
    data = tmp_path / "shared"
    first = workers.start("k1", data_dir=data, **_env(tmp_path))
    records: list = []
    stop, done = threading.Event(), threading.Event()

    def flowing():                                      # events keep coming until told to stop
        for record in TrafficGenerator(seed=33).records(20_000):
            if stop.is_set():
                return
            records.append(record)
            yield record

    def replay() -> None:
        asyncio.run(produce(fresh_broker.bootstrap_servers, flowing(), rate=400))
        done.set()

    threading.Thread(target=replay, daemon=True).start()
    wait_for(lambda: (lambda s: s.get("cost_events_sunk", 0) >= 3 and s.get("consumed", 0) >= 500)(
        first.stats() or {}), what="scoring under way, some costs sunk")
    first.kill()                                       # SIGKILL mid-stream: no shutdown hook, nothing flushed
    second = workers.start("k2", data_dir=data, **_env(tmp_path))
    time.sleep(2)
    stop.set()
    assert done.wait(60)
    valid = [json.loads(r.value) for r in records if r.valid]

    def all_scored() -> bool:
        recs = read_topic(fresh_broker.bootstrap_servers, "recommendations", len(valid), timeout_s=2)
        return not unanswered_users([json.loads(m.value) for m in recs], valid)

    wait_for(all_scored, timeout_s=120, poll_s=2, what="every event scored")
    # Its sink re-reads what the killed one had not committed (so its own sent/sunk counters do
    # not pair up); a clean stop drains the topic to its end before the store closes.
    assert second.stop() == 0

    topic = [json.loads(m.value) for m in read_topic(fresh_broker.bootstrap_servers, "cost-events", 1)]
    out = subprocess.run([sys.executable, "-c", READ_STORE, f"chdb://{data / 'clickhouse'}"], capture_output=True,
                         text=True, timeout=120, check=True)
    read = json.loads(out.stdout.strip().splitlines()[-1])
    stored = read["batches"]
    expected = {e["event_id"]: [len(e["lines"]), Decimal(e["cost"]["total"])] for e in topic}
    assert len(expected) == len(topic)                                  # ids are unique on the wire
    assert set(stored) == set(expected)                                 # nothing lost, nothing extra
    assert {b: [n, Decimal(usd)] for b, (n, usd) in stored.items()} == expected   # no row doubled
    assert all(rows == ids for rows, ids, _, _ in read["storage"].values())      # storage rows once each
