"""The loop on the real embedded stack (broker, worker, chdb): items the served version never
saw are ranked before any retrain (cold start); then the worker that stored the clicks
retrains from them in a child process, and serves the promoted candidate."""

from __future__ import annotations

import asyncio
import json
import shutil

import httpx

from reckon.models.core.registry import Registry
from reckon.streams.cli.retrain import retrain_over_http
from reckon.streams.traffic.generator import Catalog, Drift, TrafficGenerator
from reckon.streams.traffic.replay import produce

from ..conftest import wait_for
from ..kafka_io import read_topic


def test_new_items_ranked_before_a_retrain_then_retrained_from_stored_clicks(workers, fresh_broker, registry_dir,
                                                                           tmp_path) -> None:
    shutil.copytree(registry_dir, tmp_path / "registry")
    registry = Registry(tmp_path / "registry")
    frozen = registry.current()
    token, tenant_token = "t" * 24, "u" * 24
    worker = workers.start("learner", RECKON_MODEL_REGISTRY=str(registry.path), RECKON_RETRAIN_SECONDS="4",
                           RECKON_RETRAIN_MIN_EXAMPLES="50", RECKON_WEB_TOKEN=token,
                           RECKON_WEB_TENANT_TOKENS=json.dumps({"default": tenant_token}))
    records = list(TrafficGenerator(seed=43, drift=Drift(at=600)).records(2400))
    asyncio.run(produce(fresh_broker.bootstrap_servers, records))
    stats = wait_for(lambda: (s := worker.stats()) and s.get("consumed", 0) >= len(records) and s,
                     what="all events scored")

    known = set(frozen.item_ids)
    drifted = {f"i{i}" for i in range(Catalog().items, Catalog().items + Drift(at=0).new_items)}
    recs = [json.loads(m.value) for m in read_topic(fresh_broker.bootstrap_servers, "recommendations", len(records))]
    assert {r["model_version"] for r in recs} == {frozen.version}            # no retrain yet
    ranked_new = {item for r in recs for item in r["items"] if item in drifted}
    assert ranked_new and not ranked_new & known                              # never seen by the version, ranked
    assert stats["cold_start_estimates"] > 0

    clicks = sum(r.valid and r.topic == "clicks" for r in records)
    wait_for(lambda: (worker.stats() or {}).get("clicks_logged", 0) >= clicks, what="clicks stored")
    url = f"http://127.0.0.1:{worker.web_port}"
    page = f"{url}/retrain"
    # Retraining reads every tenant's clicks and can change the served model: the token for
    # every tenant only. A refused request starts nothing.
    assert httpx.post(page, params={"margin": "0.01"}, timeout=30).status_code == 401
    assert httpx.get(page, timeout=30).status_code == 401
    as_tenant = {"Authorization": f"Bearer {tenant_token}"}
    refused = httpx.post(page, params={"margin": "0.01"}, timeout=30, headers=as_tenant)
    assert refused.status_code == 403 and "tenant's token" in refused.json()["error"]
    auth = {"Authorization": f"Bearer {token}"}
    # Hostile options are refused before anything is read, each in one line.
    for params, says in [({"epochs": "9"}, "unknown retrain options ['epochs']"),
                         ({"margin": "lots"}, "retrain option margin: Input should be a valid number"),
                         ({"window_hours": "1e308"}, "retrain option window_hours: Input should be less than"),
                         ({"window_hours": "nan"}, "retrain option window_hours"),
                         ([("margin", "0.1"), ("margin", "0.2")], "each retrain option may be given once")]:
        bad = httpx.post(page, params=params, timeout=30, headers=auth)
        assert bad.status_code == 422 and bad.json()["error"].startswith(says), (params, bad.text)
    assert httpx.get(page, timeout=5, headers=auth).json() == {"running": False, "last": None}

    result = retrain_over_http(url, {"margin": 0.01, "seconds": None}, timeout_s=300, token=token)  # `reckon retrain --url`
    assert result["parent"] == frozen.version and result["split"]["clicks"] == clicks
    assert result["promoted"] and result["candidate_quality"] > result["current_quality"], result
    manifest = registry.get(result["version"]).manifest
    assert manifest["retraining"]["source"]["read"].startswith("clickhouse clicks_log")
    assert manifest["retraining"]["training_cost"]["cpu_seconds"] > 0
    wait_for(lambda: (worker.stats() or {}).get("model_version") == result["version"], what="hot-swap", timeout_s=30)
    assert httpx.get(page, timeout=5, headers=auth).json()["last"] == result
