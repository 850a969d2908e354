"""`reckon demo --drift --retrain` on the real embedded stack: under drift the retrained version
is better on the latest slice and promoted, and both versions' unit costs are reported."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal

import pytest
from rich.console import Console

from reckon.models.core.registry import Registry
from reckon.streams.cli.demo import run_demo
from reckon.streams.core.settings import Settings

pytestmark = pytest.mark.integration


def test_demo_retrains_under_drift_and_promotes(registry_dir, tmp_path) -> None:
    shutil.copytree(registry_dir, tmp_path / "models")
    main = Registry(tmp_path / "models")
    frozen = main.current_id()
    settings = Settings(data_dir=tmp_path / "data", model_registry=tmp_path / "models", worker_name="t")
    summary = run_demo(settings, 3000, 0.0, 5.0, Console(quiet=True), drift=True, retrain=True)
    json.dumps(summary, default=str)

    assert summary["promoted"] and summary["retrained_quality"] > summary["frozen_quality"], summary["promotion_reason"]
    assert summary["quality_metric"] == "hr@10" and summary["quality_examples"] >= 100
    assert summary["frozen"]["version"] == frozen != summary["retrained"]["version"]
    assert summary["events_processed"] == 4500 and summary["model_version"] == summary["retrained"]["version"]
    for name in ("frozen", "retrained"):
        figures = summary[name]
        assert figures["recommendations"] > 0 and Decimal(figures["attributed_cost_per_1k_usd"]) > 0
        assert Decimal(figures["workload_cost_per_1k_usd"]) > 0
        assert figures["attributed_clicks"] > 0 and Decimal(figures["attributed_cost_per_click_usd"]) > 0
    # phase 1: both A/B arms on the frozen version; phase 2: the retrained one beside it, same traffic.
    # Every published recommendation counted once (a user's events in one batch share one).
    assert summary["frozen"]["recommendations"] + summary["retrained"]["recommendations"] == summary["recommendations"]
    after = {a["model_version"]: a["recommendations"] for a in summary["after_retrain_by_arm"]}
    assert 0.3 < after[summary["retrained"]["version"]] / sum(after.values()) < 0.7
    arms = {(a["model_version"], a["arm"]) for a in summary["after_retrain_by_arm"]}
    assert arms == {(summary["frozen"]["version"], "challenger"), (summary["retrained"]["version"], "primary")}, summary
    assert Decimal(summary["retrained"]["training_cost_usd"]) > 0
    assert main.current_id() == frozen and len(main.list()) == 1       # the main registry is left as it was
