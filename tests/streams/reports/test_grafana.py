"""The Grafana dashboard cannot be opened here (no Docker): check its queries run, its wiring holds."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from reckon.streams.costs.idle import IntervalAccountant, Reserved
from reckon.streams.reports.report import ReportRequest, build_report
from reckon.streams.sink.rows import write_events

from .test_report import SHEET, _batch, _window_of_its_own

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "infra" / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "reckon-costs.json").read_text())
DATASOURCE = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
PROVIDER = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "reckon.yaml").read_text())


def queries() -> list[tuple[str, str]]:
    found = [(p["title"], t["rawSql"]) for p in DASHBOARD["panels"] for t in p["targets"]]
    found += [(a["name"], a["target"]["rawSql"]) for a in DASHBOARD["annotations"]["list"]]
    found += [(v["name"], v["query"]) for v in DASHBOARD["templating"]["list"]]
    return found


def expand(sql: str, tenant: str = "__all", start: int | None = None, end: int | None = None) -> str:
    """The plugin's macros, as it expands them, over [start, end] (default: the last day); the tenant variable."""
    end = int(time.time()) if end is None else end
    start = end - 86400 if start is None else start
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({start})").replace("$__toTime", f"toDateTime({end})")
    return sql.replace("${tenant}", tenant)


def test_every_query_uses_the_provisioned_datasource() -> None:
    (source,) = DATASOURCE["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    uids = {p["datasource"]["uid"] for p in DASHBOARD["panels"]}
    uids |= {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    assert len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


def test_compose_mounts_what_grafana_reads() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    assert mounts["./infra/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./infra/grafana/dashboards"] == PROVIDER["providers"][0]["options"]["path"]
    env = grafana["environment"]
    assert "grafana-clickhouse-datasource" in env["GF_INSTALL_PLUGINS"] and "CLICKHOUSE_PASSWORD" in env
    (source,) = DATASOURCE["datasources"]
    clickhouse = compose["services"]["clickhouse"]["environment"]
    assert source["jsonData"]["host"] == "clickhouse"
    assert source["jsonData"]["username"] == clickhouse["CLICKHOUSE_USER"]
    assert source["jsonData"]["defaultDatabase"] == clickhouse["CLICKHOUSE_DB"]


@pytest.mark.integration
@pytest.mark.parametrize("title,sql", queries(), ids=[q[0] for q in queries()])
def test_dashboard_query_runs_on_the_schema(clickhouse, title: str, sql: str) -> None:
    for tenant in ("__all", "acme"):
        clickhouse.query(expand(sql, tenant), tag=f"grafana:{title}")


@pytest.mark.integration
def test_the_dashboard_shows_the_reports_figures(clickhouse) -> None:
    """The same named figures as `reckon costs` over the same data (the dashboard in floats)."""
    tag = uuid.uuid4().hex[:8]
    start = _window_of_its_own(tag, days=20)
    worker = f"w-{tag}"
    acc = IntervalAccountant(SHEET, Reserved(2, 2), worker, "cpu", interval_s=10, started_at=start.timestamp())
    batches = [_batch(f"a-{tag}", "v1", start.timestamp() + 5 + 20 * i, 10, 0.4, worker) for i in range(6)]
    batches += [_batch(f"b-{tag}", "v2", start.timestamp() + 12 + 30 * i, 30, 1.0, worker) for i in range(3)]
    for event in sorted(batches, key=lambda e: e["ts"]):
        acc.observe(event)
    write_events(clickhouse, batches + acc.close_all(now=start.timestamp() + 120))
    report = build_report(clickhouse, ReportRequest(hours=1, end=start + timedelta(minutes=30)))
    window = (int(start.timestamp()) - 600, int(start.timestamp()) + 1800)
    panels = {p["title"]: p["targets"][0]["rawSql"] for p in DASHBOARD["panels"]}

    def value(title: str, tenant: str = "__all") -> float:
        return float(clickhouse.query(expand(panels[title], tenant, *window))[0][0])

    totals = report["totals"]
    for title, key in (("total cost", "total_cost_usd"), ("workload cost per 1k", "workload_cost_per_1k_usd"),
                       ("attributed cost per 1k", "attributed_cost_per_1k_usd"),
                       ("fully loaded cost per 1k", "fully_loaded_cost_per_1k_usd"), ("idle share", "idle_share")):
        assert value(title) == pytest.approx(float(totals[key]), rel=1e-9), title
    (tenant,) = [row for row in report["by_tenant"] if row["tenant"] == f"a-{tag}"]
    assert value("attributed cost per 1k", f"a-{tag}") == pytest.approx(float(tenant["attributed_cost_per_1k_usd"]))
    assert value("total cost", f"a-{tag}") == pytest.approx(float(tenant["attributed_cost_usd"]))
    pairs = clickhouse.query_dicts(expand(panels["cost by tenant and model version"], "__all", *window))
    assert sum(r["attributed cost"] for r in pairs) == pytest.approx(float(totals["total_cost_usd"]))
