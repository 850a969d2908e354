"""`reckon demo --drift --retrain`: the loop closed on one machine.

Phase 1 replays traffic that drifts halfway (new items, a popularity shift) to the
promoted ("frozen") version; the worker, which holds the store, retrains from the clicks
it stored (`POST /retrain`, a child process); the candidate is judged beside the frozen
version on the latest slice of the same run and promoted only if better; the worker
hot-swaps to it; phase 2 replays more of the drifted traffic to whichever version is then
promoted. Both versions' quality, cost per 1,000 recommendations and per attributed click
are read back at the end.

The worker runs an A/B split from the start, half of the users (by hash) on the frozen
version as the challenger arm: in phase 1 both arms serve the frozen version, in phase 2
the retrained one serves the primary arm beside it, so phase 2's online quality per arm
compares the two versions on the same traffic.

The run keeps its own registry (a copy of the promoted version), so a demo's candidates
never become the promoted model of the main registry.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console

from reckon.models.core.registry import ModelVersion, Registry
from reckon.streams.cli.retrain import retrain_over_http
from reckon.streams.core.errors import ReckonError
from reckon.streams.costs import figures as F
from reckon.streams.worker.stack import WorkerProcess


def retrain_env(frozen: str) -> dict[str, str]:
    """The worker's settings in the loop: 5 epochs over the run's clicks (a few seconds; the
    time budget only caps a machine too busy for them: cut short, the first epochs' weights
    are worse than the frozen ones), a slice of a few hundred clicks; the frozen version as
    the challenger arm of a 50 % A/B split."""
    return {"RECKON_RETRAIN_EPOCHS": "5", "RECKON_RETRAIN_SECONDS": "60", "RECKON_RETRAIN_MIN_EXAMPLES": "100",
            "RECKON_AB_VERSION": frozen, "RECKON_AB_FRACTION": "0.5"}


def run_registry(main: ModelVersion, path: Path) -> Path:
    """A registry of the run's own, holding a copy of `main` (promoted)."""
    registry = Registry(path)
    registry.promote(registry.import_version(main).version)
    return path


def wait_logged(worker: WorkerProcess, clicks: int, timeout_s: float = 60) -> None:
    """Until the sink has stored `clicks` clicks (what a retrain reads)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (worker.stats() or {}).get("clicks_logged", 0) >= clicks:
            return
        time.sleep(0.25)
    raise ReckonError(f"the sink stored fewer than {clicks} clicks in {timeout_s:.0f}s; log {worker.log_path}")


def retrain(worker: WorkerProcess, console: Console) -> dict:
    """Ask the worker to retrain now; wait for a promoted candidate to be the one it serves."""
    with console.status("retraining from the stored clicks"):
        result = retrain_over_http(f"http://127.0.0.1:{worker.web_port}", {})
    if result["promoted"]:
        deadline = time.monotonic() + 30
        while (worker.stats() or {}).get("model_version") != result["version"]:
            if time.monotonic() > deadline:
                raise ReckonError(f"the worker did not swap to {result['version']} in 30 s; log {worker.log_path}")
            time.sleep(0.25)
    return result


def version_figures(dsn: str, versions: list[str], since: float, attribution_window_s: int,
                    hours: float = 3.0) -> tuple[dict[str, dict], list[dict]]:
    """Per version: recommendations, cost per 1k of them and per attributed click, online
    quality; and online quality per (version, arm) of the events from `since` (unix s) on."""
    from reckon.streams.clickhouse.client import connect, disconnect
    from reckon.streams.reports.quality import quality_rows
    from reckon.streams.reports.report import ReportRequest, build_report

    end = datetime.now(timezone.utc) + timedelta(minutes=5)
    request = ReportRequest(hours=hours, end=end, attribution_window_s=attribution_window_s)
    ch = connect(dsn)
    try:
        report = build_report(ch, request)
        arms = quality_rows(ch, "arm", datetime.fromtimestamp(since, timezone.utc), end,
                            request.attribution_window_s)
    finally:
        disconnect(dsn)
    costs = {row["model_version"]: row for row in report["by_version"]}
    quality = {row["model_version"]: row for row in report["online_quality"]["by_version"]}
    out = {}
    for version in versions:
        cost, online = costs.get(version, {}), quality.get(version, {})
        out[version] = {"recommendations": cost.get("recommendations", 0),
                        **{key: cost.get(key) for key in (F.WORKLOAD_PER_1K.key, F.ATTRIBUTED_PER_1K.key)},
                        "attributed_clicks": cost.get("attributed_clicks", 0),
                        "attributed_cost_per_click_usd": cost.get("attributed_cost_per_click_usd"),
                        "attributed_ctr": online.get("attributed_ctr"),
                        "attributed_ctr_ci95": online.get("attributed_ctr_ci95")}
    return out, [{key: row[key] for key in ("model_version", "arm", "recommendations", "attributed_clicked",
                                            "attributed_ctr", "attributed_ctr_ci95")} for row in arms]
