"""`reckon retrain`: train the next version from the stored stream, promote it only if better.

Where the clicks come from, in order:
1. `--events FILE`: Reckon JSONL events (checked by the stream's contract);
2. `--url`: a running sink worker's `POST /retrain` (it reads its store and trains in a child);
3. a ClickHouse server DSN, or an embedded store nobody holds: read here, trained here;
4. an embedded store held by a worker: through that worker's `POST /retrain` if it
   advertises a web address, else an error naming the holder.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from reckon.models.core.registry import Registry
from reckon.streams.cli.costs import default_store
from reckon.streams.clickhouse.client import connect, disconnect, store_holder
from reckon.streams.clickhouse.migrations import migrate
from reckon.streams.core.errors import ReckonError, StoreLockedError
from reckon.streams.core.settings import Settings, load_settings
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.reports.format import usd
from reckon.streams.retrain.events import read_clicks, read_events
from reckon.streams.retrain.policy import RetrainConfig, check_overrides
from reckon.streams.retrain.run import retrain

__all__ = ["register", "retrain_over_http"]

_err = Console(stderr=True, soft_wrap=True)    # notes: one line each, however long its paths


def retrain_over_http(url: str, overrides: dict[str, Any], timeout_s: float = 3600.0, token: str = "") -> dict:
    """A worker's `POST /retrain`; `token`: the bearer token its pages need (RECKON_WEB_TOKEN)."""
    endpoint = url.rstrip("/") + "/retrain"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(endpoint, params={k: str(v) for k, v in overrides.items() if v is not None},
                              timeout=timeout_s, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:      # InvalidURL: `http://[::1`, a port of letters
        raise ReckonError(f"cannot reach {endpoint}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        raise ReckonError(f"{endpoint} answered {response.status_code} without JSON") from None
    if "error" in body:
        raise ReckonError(f"{endpoint}: {body['error']}")
    return body


def _from_clickhouse(settings: Settings, config: RetrainConfig, overrides: dict[str, Any]) -> dict:
    dsn = default_store(settings)        # as `reckon costs` reads: the configured store, else the newest
    if dsn.startswith("chdb://"):
        path = Path(dsn.removeprefix("chdb://"))
        holder = store_holder(path)
        if holder is not None:
            if holder.get("url"):
                _err.print(f"the store {escape(str(path))} is held by pid {holder.get('pid')}; asking it at "
                           f"{escape(str(holder['url']))}")
                return retrain_over_http(holder["url"], overrides, token=settings.web_token.get_secret_value())
            raise StoreLockedError(str(path), f"pid {holder.get('pid')} ({holder.get('argv', '?')})")
        if not path.is_dir():
            raise ReckonError(f"no ClickHouse store at {path}: run `reckon demo` or a worker first, point "
                              "RECKON_CLICKHOUSE_DSN at a store, or pass --events")
    end = datetime.now(timezone.utc)
    ch = connect(dsn)
    try:
        if ch.embedded:
            migrate(ch)
        clicks = read_clicks(ch, end - timedelta(hours=config.window_hours), end, config.max_clicks)
    finally:
        disconnect(dsn)
    label = f"clickhouse clicks_log, the last {config.window_hours:g} h"
    return retrain(clicks, Registry(settings.registry_dir), config, PriceSheet.load(settings.price_sheet),
                   {"read": label, "clicks_read": len(clicks)})


def _print(result: dict, console: Console) -> None:
    cost = result["training_cost"]
    console.print(f"[bold]{escape(result['version'])}[/bold] (warm-started from {escape(str(result['parent']))}, "
                  f"{result['new_items']} new items): {result['metric']} on the latest slice "
                  f"{result['candidate_quality']:.4f} vs {result['current_quality']:.4f} (current), "
                  f"{result['examples']} examples")
    console.print(f"training cost {usd(cost['cost_usd'])} ({cost['cpu_seconds']:.1f} CPU s, "
                  f"{cost['wall_seconds']:.1f} s wall on {cost['device']}, price sheet {cost['price_sheet_version']})")
    console.print(("[green]promoted[/green]: " if result["promoted"] else "[yellow]not promoted[/yellow]: ")
                  + escape(result["reason"]))


def register(app: typer.Typer) -> None:
    @app.command("retrain")
    def retrain_cmd(
        events: Optional[Path] = typer.Option(None, "--events", exists=True, dir_okay=False,
                                              help="a JSONL file of Reckon events instead of ClickHouse's clicks"),
        url: Optional[str] = typer.Option(None, help="a running sink worker's web address: it retrains"),
        window_hours: Optional[float] = typer.Option(None, min=0.001, help="clicks read, ending now "
                                                     "[default: RECKON_RETRAIN_WINDOW_HOURS, 24]"),
        margin: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="promote only when better by this "
                                               "(absolute, in the metric) [default: RECKON_RETRAIN_MARGIN, 0.01]"),
        seconds: Optional[float] = typer.Option(None, min=0.1, help="training wall-time budget "
                                                "[default: RECKON_RETRAIN_SECONDS, 120]"),
        min_examples: Optional[int] = typer.Option(None, min=1, help="examples in the latest slice needed to "
                                                   "decide [default: RECKON_RETRAIN_MIN_EXAMPLES, 200]"),
        eval_fraction: Optional[float] = typer.Option(None, min=0.01, max=0.49, help="share of the clicks in the "
                                                      "latest slice [default: RECKON_RETRAIN_EVAL_FRACTION, 0.2]"),
        source_label: Optional[str] = typer.Option(None, hidden=True, help="where --events came from"),
        json_out: bool = typer.Option(False, "--json", help="print the result (or the error) as one JSON line"),
    ) -> None:
        """Train the next version from the stored stream (warm start, time split); register it
        with its training cost; promote it only if it beats the current version by the margin."""
        overrides = {"window_hours": window_hours, "margin": margin, "seconds": seconds,
                     "min_examples": min_examples, "eval_fraction": eval_fraction}
        if url and events is not None:      # the worker reads its own store: the file would be ignored
            raise typer.BadParameter("--events and --url are two sources of clicks: give one", param_hint="'--events'")
        try:
            settings = load_settings()
            overrides = check_overrides(overrides)
            config = RetrainConfig.from_settings(settings, **overrides)
            if url:
                result = retrain_over_http(url, overrides, token=settings.web_token.get_secret_value())
            elif events is not None:
                clicks, skipped = read_events(events, time.time(), settings.default_tenant)
                result = retrain(clicks, Registry(settings.registry_dir), config, PriceSheet.load(settings.price_sheet),
                                 {"read": source_label or f"events file {events}", "clicks_read": len(clicks),
                                  "skipped": dict(skipped)})
            else:
                result = _from_clickhouse(settings, config, overrides)
        except ReckonError as exc:
            if not json_out:
                raise
            sys.stdout.write(json.dumps({"error": str(exc)}) + "\n")
            raise typer.Exit(2) from None           # as without --json (streams/cli/main.py)
        if json_out:
            sys.stdout.write(json.dumps(result) + "\n")
        else:
            _print(result, Console())
