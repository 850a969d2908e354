"""`reckon demo --drift --retrain` on the real embedded stack: under drift the retrained version
is better on the latest slice and promoted, and both versions' unit costs are reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal

import pytest

from reckon.models.core.registry import Registry

pytestmark = pytest.mark.integration


def test_demo_retrains_under_drift_and_promotes(registry_dir, tmp_path) -> None:
    shutil.copytree(registry_dir, tmp_path / "models")
    main = Registry(tmp_path / "models")
    frozen = main.current_id()
    # As a user runs it, in a process of its own: chdb opens one store per process, and this
    # one may hold the session's.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RECKON_")},
           "RECKON_DATA_DIR": str(tmp_path / "data"), "RECKON_MODEL_REGISTRY": str(tmp_path / "models"),
           "RECKON_WORKER_NAME": "t"}
    out = subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", "demo", "--drift", "--retrain",
                          "--events", "3000", "--train-seconds", "5", "--json"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])

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
