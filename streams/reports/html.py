"""`reckon costs --html`: one self-contained HTML file (plotly.js inline, no network).

Plots: attributed cost per minute per model version, cost per 1,000 recommendations per
minute per version (alerts marked on both), cost by kind and component, attributed
click-through rate over time per version and arm; then the tables.
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from reckon.streams.reports.quality import (
    ARM_COLUMNS,
    ARM_TITLE,
    VERSION_COLUMNS,
    VERSION_TITLE,
    arm_cells,
    version_cells,
)

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.note{color:#666}"""


def render_html(report: dict) -> str:
    """The report as one HTML page; needs the report's `series` (ReportRequest(series=True))."""
    figures = [_cost_over_time(report), _cost_per_1k(report), _by_component(report), _ctr_over_time(report)]
    plots = [pio.to_html(fig, full_html=False, include_plotlyjs="inline" if i == 0 else False)
             for i, fig in enumerate(figures)]
    w, t = report["window"], report["totals"]
    share = report["idle_share"]
    summary = (f"total ${t['cost_usd']} = workload ${t['workload_usd']} + idle ${t['idle_usd']} + shared "
               f"${t['shared_usd']}; {t['recommendations']} recommendations; cost per 1,000 recommendations "
               f"${t['cost_per_1k_recs_usd'] or '-'} (attributed), ${t['fully_loaded_per_1k_recs_usd'] or '-'} "
               f"(with idle); idle share {'-' if share is None else f'{share:.1%}'}")
    body = [f"<h1>Reckon costs</h1><p class='note'>{html.escape(w['start'])} .. {html.escape(w['end'])}"
            + (f", tenant {html.escape(w['tenant'])}" if w["tenant"] else "") + "</p>",
            f"<p>{html.escape(summary)}</p>", *plots,
            _table("By model version", report["by_version"],
                   ("model_version", "cost_usd", "recommendations", "cost_per_1k_recs_usd", "attributed_clicks",
                    "cost_per_attributed_click_usd", "attributed_purchases", "cost_per_attributed_purchase_usd")),
            _table(VERSION_TITLE, version_cells(report, _money), VERSION_COLUMNS),
            _table(ARM_TITLE, arm_cells(report), ARM_COLUMNS),
            _table("By tenant", report["by_tenant"],
                   ("tenant", "cost_usd", "workload_usd", "shared_usd", "recommendations", "cost_per_1k_recs_usd")),
            _table("Idle by worker", report["idle"], ("worker", "device", "idle_usd", "total_usd", "idle_share")),
            _table("Recent alerts", report["alerts"],
                   ("ts", "kind", "metric", "tenant", "model_version", "severity", "observed", "expected"))]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Reckon costs</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>")


def write_html(report: dict, path: Path) -> Path:
    path.write_text(render_html(report), encoding="utf-8")
    return path


def _per_version(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for point in report.get("series", []):
        out[point["model_version"] or "(unattributed)"].append(point)
    return out


def _mark_alerts(fig: go.Figure, report: dict) -> None:
    for alert in report.get("alerts", []):
        fig.add_vline(x=datetime.fromisoformat(alert["data_ts"]).timestamp() * 1000,
                      line_dash="dot", line_color="red" if alert["severity"] == "critical" else "orange")
        fig.add_annotation(x=datetime.fromisoformat(alert["data_ts"]), y=1, yref="paper", showarrow=False,
                           text=f"{alert['kind']}: {alert['metric']}", font={"color": "red"}, textangle=-90,
                           xanchor="left", yanchor="top")


def _cost_over_time(report: dict) -> go.Figure:
    fig = go.Figure()
    for version, points in sorted(_per_version(report).items()):
        fig.add_scatter(x=[p["minute"] for p in points], y=[float(Decimal(p["cost_usd"])) for p in points],
                        mode="lines+markers", name=version)
    fig.update_layout(title="Attributed cost per minute (USD), by model version", xaxis_title="minute (UTC)",
                      yaxis_title="USD", height=380)
    _mark_alerts(fig, report)
    return fig


def _cost_per_1k(report: dict) -> go.Figure:
    fig = go.Figure()
    for version, points in sorted(_per_version(report).items()):
        shown = [p for p in points if p["recommendations"]]
        if shown:
            fig.add_scatter(x=[p["minute"] for p in shown],
                            y=[float(Decimal(p["cost_usd"]) * 1000 / p["recommendations"]) for p in shown],
                            mode="lines+markers", name=version)
    fig.update_layout(title="Cost per 1,000 recommendations (USD), by model version", xaxis_title="minute (UTC)",
                      yaxis_title="USD per 1k", height=380)
    _mark_alerts(fig, report)
    return fig


def _ctr_over_time(report: dict) -> go.Figure:
    """Attributed CTR per bucket, per version and arm, with its 95 % interval as error bars."""
    fig = go.Figure()
    lines: dict[str, list[dict]] = defaultdict(list)
    for point in report.get("online_quality", {}).get("series", []):
        if point["attributed_ctr"] is not None:
            lines[f"{point['model_version']} ({point['arm'] or 'arm not recorded'})"].append(point)
    for name, points in sorted(lines.items()):
        rate = [p["attributed_ctr"] * 100 for p in points]
        fig.add_scatter(x=[p["bucket"] for p in points], y=rate, mode="lines+markers", name=name,
                        error_y={"type": "data", "symmetric": False,
                                 "array": [p["attributed_ctr_ci95"][1] * 100 - r for p, r in zip(points, rate)],
                                 "arrayminus": [r - p["attributed_ctr_ci95"][0] * 100 for p, r in zip(points, rate)]})
    fig.update_layout(title="Attributed click-through rate (%), by model version and arm, 95 % Wilson interval",
                      xaxis_title="trigger time (UTC)", yaxis_title="% of recommendations", height=380)
    return fig


def _by_component(report: dict) -> go.Figure:
    fig = go.Figure()
    for component in ("compute", "storage", "people", "ops"):
        fig.add_bar(x=[row["kind"] for row in report["by_component"]],
                    y=[float(Decimal(row[f"{component}_usd"])) for row in report["by_component"]], name=component)
    fig.update_layout(barmode="stack", title="Cost by kind and component (USD)", height=340)
    return fig


def _table(title: str, rows: list[dict], columns: tuple[str, ...]) -> str:
    if not rows:
        return f"<h2>{html.escape(title)}</h2><p class='note'>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def _money(value: object) -> str:
    return "-" if value is None else f"${value}"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value) or "(unattributed)"
