"""The Grafana dashboard cannot be opened here (no Docker): check its queries run, its wiring holds."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

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


def expand(sql: str, tenant: str = "__all") -> str:
    """The plugin's macros, as it expands them, over the last day; the tenant variable."""
    end = int(time.time())
    start = end - 86400
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
