"""`reckon costs`: the cost report, wherever the data is.

Where it reads from, in order:
1. `--url` given: that worker's read-only `GET /costs`;
2. a ClickHouse server DSN: the server;
3. an embedded chdb store held by a live process (its owner file): through that process's
   `GET /costs` if it advertises one, else an error naming the holder;
4. an embedded store nobody holds: opened here, read, closed.

With no RECKON_CLICKHOUSE_DSN set, the embedded store is the data directory's own
(`<data dir>/clickhouse`, a worker's) or the last demo's (`<data dir>/demo/clickhouse`),
whichever was written last; stderr says which.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from reckon.streams.clickhouse.client import connect, disconnect, store_holder
from reckon.streams.clickhouse.migrations import migrate
from reckon.streams.core.errors import ReckonError, StoreLockedError
from reckon.streams.core.settings import Settings, load_settings
from reckon.streams.costs.pricing import DEFAULT_SHEET, PriceSheet
from reckon.streams.costs.repricing import sync_prices
from reckon.streams.reports.report import ReportRequest, build_report
from reckon.streams.reports.text import render_text, render_why
from reckon.streams.reports.why import explain

__all__ = ["fetch_report", "fetch_reports", "fetch_over_http", "online_quality", "register"]

_err = Console(stderr=True, soft_wrap=True)    # notes: one line each, however long its paths


def fetch_over_http(url: str, request: ReportRequest, timeout_s: float = 60.0, token: str = "") -> dict:
    """The report from a worker's `GET /costs`; `token`: the bearer token its pages need."""
    endpoint = url.rstrip("/") + "/costs"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(endpoint, params=request.to_query(), timeout=timeout_s, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:      # InvalidURL: `http://[::1`, a port of letters
        raise ReckonError(f"cannot reach {endpoint}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        raise ReckonError(f"{endpoint} answered {response.status_code} without JSON") from None
    if response.status_code == 404:
        raise ReckonError(f"{endpoint} answered 404: that worker serves no cost report (a worker with "
                          "RECKON_ROLE=all or sink does: it holds the store)")
    if response.status_code != 200:
        raise ReckonError(f"{endpoint} answered {response.status_code}: {body.get('error', body)}")
    return body


def default_store(settings: Settings) -> str:
    """The DSN to read: the configured one, else the most recently written embedded store."""
    if settings.clickhouse_dsn.get_secret_value():
        return settings.clickhouse_url
    candidates = [path for path in ((settings.data_dir / "clickhouse").resolve(),
                                    (settings.data_dir / "demo" / "clickhouse").resolve()) if path.is_dir()]
    if not candidates:
        return settings.clickhouse_url
    newest = max(candidates, key=_last_written)
    if len(candidates) > 1 or newest.parent.name == "demo":
        _err.print(f"reading {escape(str(newest))} (the most recently written store; "
                   "RECKON_CLICKHOUSE_DSN picks another)")
    return f"chdb://{newest}"


def _last_written(store: Path) -> float:
    return max((p.stat().st_mtime for p in store.rglob("*")), default=store.stat().st_mtime)


def fetch_report(settings: Settings, request: ReportRequest, url: str | None = None,
                 load_prices: Path | None = None) -> tuple[dict, str]:
    """(report, where it came from)."""
    reports, source = fetch_reports(settings, [request], url, load_prices)
    return reports[0], source


def fetch_reports(settings: Settings, requests: list[ReportRequest], url: str | None = None,
                  load_prices: Path | None = None) -> tuple[list[dict], str]:
    """(a report per request, where they came from): one store opened, or one worker asked, for all."""
    if url:
        if load_prices is not None:
            raise ReckonError("--load-prices writes to ClickHouse; it needs the store, not --url")
        token = settings.web_token.get_secret_value()
        return [fetch_over_http(url, r, token=token) for r in requests], url
    dsn = default_store(settings)
    if dsn.startswith("chdb://"):
        path = Path(dsn.removeprefix("chdb://"))
        holder = store_holder(path)
        if holder is not None:
            if holder.get("url") and load_prices is None:
                _err.print(f"the store {escape(str(path))} is held by pid {holder.get('pid')}; asking it at "
                           f"{escape(str(holder['url']))}")
                token = settings.web_token.get_secret_value()
                return [fetch_over_http(holder["url"], r, token=token) for r in requests], holder["url"]
            raise StoreLockedError(str(path), f"pid {holder.get('pid')} ({holder.get('argv', '?')})")
        if not path.is_dir():
            raise ReckonError(f"no ClickHouse store at {path}: run `reckon demo` or a worker first, or point "
                              "RECKON_CLICKHOUSE_DSN at a store")
    ch = connect(dsn)
    try:
        if ch.embedded:
            migrate(ch)   # a store from an older build gains the views; a server is migrated by `reckon migrate`
        if load_prices is not None:
            sheet = PriceSheet.load(load_prices)
            inserted = sync_prices(ch, sheet)
            _err.print(f"price sheet {escape(sheet.version)}: {inserted} price rows loaded")
            requests = [dataclasses.replace(r, sheet_version=sheet.version) for r in requests]
        return [build_report(ch, r) for r in requests], ("store " + dsn if dsn.startswith("chdb://") else "server")
    finally:
        disconnect(dsn)


def online_quality(hours: float) -> tuple[dict[str, dict], str | None]:
    """Per model version, its online quality over the last `hours` (for `reckon model list`), read
    as `reckon costs` reads; ({}, why not) when there is no store to read."""
    try:
        settings = load_settings()
        report, _ = fetch_report(settings, ReportRequest(hours=hours, attribution_window_s=settings.attribution_window_s))
    except ReckonError as exc:
        return {}, str(exc)
    return {row["model_version"]: row for row in report["online_quality"]["by_version"]}, None


def _why(settings: Settings, request: ReportRequest, against: datetime | None, url: str | None, json_out: bool,
         html: Path | None, other_output: bool) -> None:
    """`reckon costs --why`: the window (ending now, or at --end) against the one of the same length
    ending at `against` (default: the one just before it) (streams/reports/why.py)."""
    if other_output:
        raise ReckonError("--why compares two windows (text, --json or --html): leave out --audit, --reprice "
                          "and --load-prices")
    end = request.end or datetime.now(timezone.utc)
    if against is not None and against >= end:
        raise ReckonError(f"--against {against.isoformat()} is not before the window's end ({end.isoformat()}): "
                          "it names the end of the earlier window to compare with")
    try:
        windows = [dataclasses.replace(request, end=against or end - timedelta(hours=request.hours)),
                   dataclasses.replace(request, end=end)]
    except (ValueError, OverflowError) as exc:       # the earlier window: the later one was checked
        raise ReckonError(f"--why{' --against' if against is not None else ''}: {exc}") from None
    (before, after), source = fetch_reports(settings, windows, url)
    answer = explain(before, after)
    if html is not None:
        from reckon.streams.reports.html import render_why_html

        html.write_text(render_why_html(answer), encoding="utf-8")
        _err.print(f"wrote {escape(str(html))}")
    if json_out:
        sys.stdout.write(json.dumps({**answer, "source": source}) + "\n")
    elif html is None:
        render_why(answer, Console())


def _instant(text: str | None, option: str = "--end") -> datetime | None:
    """A time option's value (UTC unless it names a zone)."""
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ReckonError(f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-12-04T21:00 or "
                          "2026-12-04T21:00+01:00)") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def register(app: typer.Typer) -> None:
    @app.command()
    def costs(
        hours: float = typer.Option(24.0, min=0.001, help="report window, ending now (or at --end)"),
        end: Optional[str] = typer.Option(None, help="the window's end, ISO 8601 (UTC unless it names a zone) "
                                          "[default: now]"),
        tenant: Optional[str] = typer.Option(None, help="only this tenant"),
        json_out: bool = typer.Option(False, "--json", help="print the report as JSON (money as decimal strings)"),
        html: Optional[Path] = typer.Option(None, "--html", dir_okay=False, help="write a self-contained HTML report"),
        url: Optional[str] = typer.Option(None, help="a running worker's web address, e.g. http://127.0.0.1:6066"),
        reprice: Optional[str] = typer.Option(None, help="also re-price the window under this price-sheet version"),
        load_prices: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                                   help="mirror this price sheet into ClickHouse and re-price under it"),
        audit: bool = typer.Option(False, help="also compare raw cost rows with both rollups (all time)"),
        attribution_window_s: Optional[int] = typer.Option(None, min=1, max=7 * 86400, help="click attribution "
                                                           "window, seconds [default: RECKON_ATTRIBUTION_WINDOW_S, 1800]"),
        idle: str = typer.Option("shared", help="idle cost: shared (spread over tenants and versions) or separate"),
        wide: bool = typer.Option(False, "--wide", help="every column (the default fits 80 columns)"),
        why: bool = typer.Option(False, "--why", help="why fully loaded cost per 1k moved: this window against "
                                 "the one just before it, split by part of the cost and by model version"),
        against: Optional[str] = typer.Option(None, help="with --why: compare with the window of the same length "
                                              "ending at this time, ISO 8601 (e.g. a day or a release earlier) "
                                              "[default: where this window starts]"),
    ) -> None:
        """Cost by model version, tenant and component; unit costs; idle share; recent alerts.
        The figures are defined in README ("What the cost figures mean")."""
        settings = load_settings()
        # The prices a worker with these settings records under: a bad or misspelled
        # RECKON_PRICE_* is refused here as it is there, not left to look like it took effect.
        sheet = PriceSheet.load(settings.price_sheet)
        if sheet.overridden and reprice is None and load_prices is None:
            _err.print(f"RECKON_PRICE_* set (sheet {escape(sheet.version)}): stored costs keep the prices they "
                       f"were recorded with; `--load-prices {escape(str(settings.price_sheet or DEFAULT_SHEET))}` "
                       "re-prices this report under it with these overrides")
        try:
            request = ReportRequest(hours=hours, end=_instant(end), tenant=tenant, series=html is not None, audit=audit,
                                    sheet_version=reprice, idle=idle,  # type: ignore[arg-type]
                                    attribution_window_s=attribution_window_s or settings.attribution_window_s)
        except ValueError as exc:
            raise ReckonError(str(exc)) from None
        if html is not None and not (html.parent.is_dir() and os.access(html.parent, os.W_OK | os.X_OK)):
            # before the report is built (a store's whole window may take a while), not after
            raise ReckonError(f"--html {html}: {html.parent} is not a writable directory")
        if why:
            _why(settings, request, _instant(against, "--against"), url, json_out, html,
                 audit or reprice is not None or load_prices is not None)
            return
        if against is not None:
            raise ReckonError("--against names the window --why compares with: add --why")
        report, source = fetch_report(settings, request, url, load_prices)
        if tenant is not None and not report.get("by_tenant"):
            _err.print(f"tenant {escape(repr(tenant))} has no recorded work in these {hours:g} h (a misspelling?): "
                       "no cost is attributed to it; capacity and idle figures are the deployment's")
        if html is not None:
            from reckon.streams.reports.html import write_html

            _err.print(f"wrote {escape(str(write_html(report, html)))}")
        if json_out:
            sys.stdout.write(json.dumps({**report, "source": source}) + "\n")
        elif html is None:
            render_text(report, Console(width=200) if wide else Console(), wide=wide)
