"""Retrains in the worker that holds the ClickHouse store: every RECKON_RETRAIN_INTERVAL_S
(when set) and on request (`POST /retrain`, what `reckon retrain` asks a worker holding
an embedded store). Each runs in a child process (streams/retrain/child.py); the worker's
registry timer then hot-swaps to a promoted candidate like to any promotion.

`/retrain` trains on every tenant's clicks and can change the served model: with tokens
configured (streams/worker/auth.py) only `RECKON_WEB_TOKEN`'s, which covers every tenant,
may use it; a tenant's token is refused."""

from __future__ import annotations

from collections import Counter
from typing import Any

import faust
from faust.web import View

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.core.settings import Settings
from reckon.streams.retrain.child import RetrainRunner
from reckon.streams.worker.auth import PageAuth, every_tenant_refusal


def install(app: faust.App, settings: Settings, ch: ClickHouse, stats: Counter, auth: PageAuth) -> RetrainRunner:
    runner = RetrainRunner(settings, ch)

    async def run(overrides: dict[str, str]) -> dict[str, Any]:
        result = await runner.run(overrides)
        stats["retrains"] += 1
        stats["retrain_errors" if "error" in result else
              "retrains_promoted" if result["promoted"] else "retrains_refused"] += 1
        return result

    if settings.retrain_interval_s > 0:
        @app.timer(settings.retrain_interval_s)
        async def scheduled_retrain() -> None:
            await run({})

    class RetrainPage(View):
        def refused(self, request: Any) -> Any:
            return every_tenant_refusal(auth, self.web, request, "retraining")

        async def get(self, request: Any) -> Any:
            """The last retrain's result, and whether one is running."""
            return self.refused(request) or self.json({"running": runner.running, "last": runner.last})

        async def post(self, request: Any) -> Any:
            """Retrain now (query parameters: streams/retrain/policy.py OVERRIDES); answers when done."""
            refused = self.refused(request)
            if refused is not None:
                return refused
            query = request.query
            if len(query) != len(set(query)):
                return self.json({"error": "each retrain option may be given once"}, status=422)
            result = await run(dict(query))
            return self.json(result, status=422 if "error" in result else 200)

    app.page("/retrain")(RetrainPage)
    return runner
