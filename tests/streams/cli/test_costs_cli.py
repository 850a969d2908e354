"""`reckon demo` then `reckon costs` on its store: the same named figures, no setup between."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from reckon.streams.cli.costs import default_store
from reckon.streams.core.settings import Settings


def test_the_newest_embedded_store_is_read_unless_a_dsn_says_otherwise(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert default_store(settings) == settings.clickhouse_url                 # none yet: the default
    worker, demo = tmp_path / "clickhouse", tmp_path / "demo" / "clickhouse"
    for store, age in ((worker, 100), (demo, 10)):
        store.mkdir(parents=True)
        (store / "part").write_text("x")
        os.utime(store / "part", (time.time() - age, time.time() - age))
    assert default_store(settings) == f"chdb://{demo.resolve()}"             # the demo wrote last
    os.utime(worker / "part")
    assert default_store(settings) == f"chdb://{worker.resolve()}"
    chosen = Settings(data_dir=tmp_path, clickhouse_dsn="chdb:///elsewhere")
    assert default_store(chosen) == "chdb:///elsewhere"


def _reckon(*args: str, env: dict[str, str], timeout: int = 400) -> dict:
    out = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", *args], env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_demo_then_costs_agree_on_every_named_figure(registry_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECKON_")} | {
        "RECKON_DATA_DIR": str(tmp_path / "data"), "RECKON_MODEL_REGISTRY": str(registry_dir)}
    demo = _reckon("demo", "--events", "800", "--json", env=env)
    costs = _reckon("costs", "--json", env=env, timeout=120)
    assert costs["source"] == f"store {demo['store']}"
    assert costs["totals"] == demo["costs"]["totals"]                        # every figure, exactly
    assert costs["by_version"] == demo["costs"]["by_version"] and costs["by_tenant"] == demo["costs"]["by_tenant"]
    totals = costs["totals"]
    assert totals["recommendations"] == demo["recommendations"]
    assert all(row["tenant"] for row in costs["by_tenant"])                   # no nameless tenant
    assert sum(Decimal(r["attributed_cost_usd"]) for r in costs["by_tenant"]) == Decimal(totals["total_cost_usd"])
    assert totals["idle_share"] > 0.8                                        # a mostly idle demo
    assert sum(row["bytes"] for row in costs["clickhouse"]) > 0               # bytes ClickHouse wrote
    # a tenant with no recorded work is said so (a misspelling printed a report of zeros without a word)
    for tenant, noted in ((costs["by_tenant"][0]["tenant"], False), ("nosuch", True)):
        out = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "costs", "--tenant", tenant, "--json"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and ("has no recorded work" in out.stderr) is noted, out.stderr


def test_a_worker_without_the_cost_report_is_named_so() -> None:
    """A scorer has no GET /costs: `reckon costs --url` said only '404: Not Found'."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from reckon.streams.cli.costs import fetch_over_http
    from reckon.streams.core.errors import ReckonError
    from reckon.streams.reports.report import ReportRequest

    class NotHere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error":"Not Found"}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotHere)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ReckonError, match="answered 404: that worker serves no cost report"):
            fetch_over_http(f"http://127.0.0.1:{server.server_port}", ReportRequest(hours=1))
    finally:
        server.shutdown()
