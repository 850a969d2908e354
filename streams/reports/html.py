"""`reckon costs --html`: one self-contained HTML file (plotly.js inline, no network).

Charts, each with a legend naming its series and a y-axis from zero: attributed and workload
cost per 1,000 recommendations by model version, attributed cost by tenant, the idle share
of paid capacity (per minute, each minute allocated on its own), attributed click-through
rate by version and A/B arm (streams/reports/quality.py), with alerts marked on the time
charts; and what the window cost by kind and component, one bar each with its value
written on it (people dwarf the rest, so none is stacked on another). Then the same totals
and tables as the text report (streams/reports/tables.py), money formatted the same way.
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from reckon.streams.costs import figures as F
from reckon.streams.reports.format import count, share, usd
from reckon.streams.reports.tables import METRIC_LABELS, baseline, minute, report_tables, signed_usd, why_tables

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.note{color:#666}
.totals td:nth-child(3){text-align:left;color:#666}"""
_MONEY_AXIS = {"rangemode": "tozero", "tickprefix": "$", "tickformat": ".3~g", "title": "USD"}
_HEIGHT = 380
PAD = timedelta(minutes=5)     # around a time chart's data (within the report's window)


def render_html(report: dict) -> str:
    """The report as one HTML page; needs the report's `series` (ReportRequest(series=True))."""
    series = report.get("series") or {"by_version": [], "by_tenant": [], "idle_share": []}
    figures = [
        _per_version(report, series, F.ATTRIBUTED_PER_1K, "Attributed cost per 1,000 recommendations by model "
                     "version (per minute)"),
        _per_version(report, series, F.WORKLOAD_PER_1K, "Workload cost per 1,000 recommendations by model "
                     "version (per minute)"),
        _per_tenant(report, series),
        _idle_share(report, series),
    ]
    span = _time_span(figures, report["window"], PAD)         # the per-minute charts line up
    for fig in figures:
        fig.update_xaxes(range=span)
    ctr = _ctr(report)      # in buckets of its own (an hour in a day's report): a range of its own
    bucket = timedelta(seconds=report.get("online_quality", {}).get("bucket_s") or 60)
    figures += [ctr.update_xaxes(range=_time_span([ctr], report["window"], max(PAD, bucket))), _by_kind(report)]
    plots = [pio.to_html(fig, full_html=False, include_plotlyjs="inline" if i == 0 else False,
                         config={"displaylogo": False})
             for i, fig in enumerate(figures)]
    w = report["window"]
    head = (f"<h1>Reckon costs</h1><p class='note'>{minute(w['start'])} to {minute(w['end'])} UTC ({w['hours']:g} h)"
            + (f", tenant {html.escape(w['tenant'])}" if w["tenant"] else ", all tenants")
            + f"; idle cost {'spread over tenants and versions' if w['idle'] == 'shared' else 'kept separate'}."
            " Definitions: README, &ldquo;What the cost figures mean&rdquo;.</p>")
    tables = [_table(t.title, t.rows, t.columns, t.note) for t in report_tables(report)]
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Reckon costs</title>"
            f"<style>{_STYLE}</style></head><body>{head}{_totals(report['totals'])}{''.join(plots)}"
            f"{''.join(tables)}</body></html>")


def write_html(report: dict, path: Path) -> Path:
    path.write_text(render_html(report), encoding="utf-8")
    return path


def render_why_html(answer: dict) -> str:
    """`reckon costs --why --html`: the same windows, tables and summary as the text."""
    b, a = answer["before"], answer["after"]
    w = a["window"]
    head = (f"<h1>Why {html.escape(F.FULLY_LOADED_PER_1K.label)} moved</h1><p class='note'>{minute(w['start'])} to "
            f"{minute(w['end'])} UTC against {baseline(answer)}"
            + (f", tenant {html.escape(w['tenant'])}" if w["tenant"] else ", all tenants")
            + ". Definitions: README, &ldquo;What the cost figures mean&rdquo;.</p>"
            f"<p>recommendations {count(b['recommendations'])} &rarr; {count(a['recommendations'])}; "
            f"{html.escape(F.TOTAL.label)} {usd(b[F.TOTAL.key])} &rarr; {usd(a[F.TOTAL.key])}</p>")
    body = ""
    if answer["comparable"]:
        per_1k = answer["fully_loaded_cost_per_1k"]
        body = (f"<p>{html.escape(F.FULLY_LOADED_PER_1K.label)} {usd(per_1k['before_usd'])} &rarr; "
                f"{usd(per_1k['after_usd'])} ({html.escape(signed_usd(per_1k['change_usd']))})</p>"
                + "".join(_table(t.title, t.rows, t.columns, t.note) for t in why_tables(answer)))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Reckon: why cost per 1k moved</title>"
            f"<style>{_STYLE}</style></head><body>{head}{body}<p><b>{html.escape(answer['summary'])}</b></p>"
            "</body></html>")


def _totals(t: dict) -> str:
    rows = [(F.WORKLOAD, usd(t[F.WORKLOAD.key])), (F.IDLE, usd(t[F.IDLE.key])), (F.SHARED, usd(t[F.SHARED.key])),
            (F.PEOPLE, usd(t[F.PEOPLE.key])), (F.OPS, usd(t[F.OPS.key])), (F.TOTAL, usd(t[F.TOTAL.key])),
            (F.WORKLOAD_PER_1K, usd(t[F.WORKLOAD_PER_1K.key])), (F.ATTRIBUTED_PER_1K, usd(t[F.ATTRIBUTED_PER_1K.key])),
            (F.FULLY_LOADED_PER_1K, usd(t[F.FULLY_LOADED_PER_1K.key])),
            (F.IDLE_SHARE, f"{share(t[F.IDLE_SHARE.key])} of {usd(t[F.CAPACITY.key])}")]
    if Decimal(t[F.UNALLOCATED.key]) != 0:
        rows.insert(6, (F.UNALLOCATED, usd(t[F.UNALLOCATED.key])))
    body = "".join(f"<tr><td>{html.escape(f.label)}</td><td>{html.escape(v)}</td><td>{html.escape(f.meaning)}</td></tr>"
                   for f, v in rows)
    return (f"<p>{count(t['recommendations'])} recommendations answering {count(t['events'])} events</p>"
            f"<table class='totals'>{body}</table>")


def _time_span(figures: list[go.Figure], window: dict, pad: timedelta) -> list[str]:
    """One x range for time charts: their data's, padded by `pad`, inside the window. Plotly's
    own range around a single minute put ticks milliseconds apart, and each chart had its own."""
    stamps = [datetime.fromisoformat(str(x)) for fig in figures for trace in fig.data for x in trace.x]
    lo, hi = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
    if stamps:
        aware = [t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in stamps]
        lo, hi = max(lo, min(aware) - pad), min(hi, max(aware) + pad)
    return [lo.isoformat(), hi.isoformat()]


def _layout(fig: go.Figure, title: str, yaxis: dict, legend: str) -> go.Figure:
    fig.update_layout(title=title, height=_HEIGHT, xaxis_title="minute (UTC)", yaxis=yaxis,
                      showlegend=True, legend_title_text=legend, margin={"t": 60})
    if not fig.data:
        fig.add_annotation(text="no data in this window", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_yaxes(range=[0, 1])
    return fig


def _per_version(report: dict, series: dict, figure: F.Figure, title: str) -> go.Figure:
    fig = go.Figure()
    by: dict[str, list[dict]] = defaultdict(list)
    for point in series["by_version"]:
        if point[figure.key] is not None:
            by[point["model_version"]].append(point)
    for version, points in sorted(by.items()):
        fig.add_scatter(x=[p["minute"] for p in points], y=[float(p[figure.key]) for p in points],
                        mode="lines+markers", name=_text(version),
                        hovertemplate=f"{_text(version)}<br>%{{x}}<br>%{{y:$.3~g}} per 1k<extra></extra>")
    _mark_alerts(fig, report)
    return _layout(fig, title, {**_MONEY_AXIS, "title": "USD per 1,000 recommendations"}, "model version")


def _per_tenant(report: dict, series: dict) -> go.Figure:
    fig = go.Figure()
    by: dict[str, list[dict]] = defaultdict(list)
    for point in series["by_tenant"]:
        by[point["tenant"]].append(point)
    for tenant, points in sorted(by.items()):
        fig.add_scatter(x=[p["minute"] for p in points], y=[float(p[F.ATTRIBUTED.key]) for p in points],
                        mode="lines+markers", name=_text(tenant), stackgroup="tenants",
                        hovertemplate=f"{_text(tenant)}<br>%{{x}}<br>%{{y:$.3~g}}<extra></extra>")
    _mark_alerts(fig, report)
    return _layout(fig, "Attributed cost per minute by tenant (stacked: the top line is the minute's total)",
                   _MONEY_AXIS, "tenant")


def _idle_share(report: dict, series: dict) -> go.Figure:
    fig = go.Figure()
    points = [p for p in series["idle_share"] if p[F.IDLE_SHARE.key] is not None]
    if points:
        fig.add_scatter(x=[p["minute"] for p in points], y=[p[F.IDLE_SHARE.key] for p in points],
                        mode="lines+markers", name="idle share of paid capacity",
                        hovertemplate="%{x}<br>%{y:.1%} idle<extra></extra>")
    _mark_alerts(fig, report)
    fig = _layout(fig, "Idle share of paid capacity (reserved compute no batch used), per minute",
                  {"rangemode": "tozero", "tickformat": ".0%", "title": "idle share"}, "")
    return fig.update_yaxes(range=[0, 1.05])


def _ctr(report: dict) -> go.Figure:
    """Attributed CTR per bucket, per version and arm, with its 95 % interval as error bars
    (streams/reports/quality.py)."""
    fig = go.Figure()
    lines: dict[str, list[dict]] = defaultdict(list)
    for point in report.get("online_quality", {}).get("series", []):
        if point["attributed_ctr"] is not None:
            lines[f"{point['model_version']} ({point['arm'] or 'arm not recorded'})"].append(point)
    for name, points in sorted(lines.items()):
        rate = [p["attributed_ctr"] for p in points]
        fig.add_scatter(x=[p["bucket"] for p in points], y=rate, mode="lines+markers", name=_text(name),
                        error_y={"type": "data", "symmetric": False,
                                 "array": [p["attributed_ctr_ci95"][1] - r for p, r in zip(points, rate)],
                                 "arrayminus": [r - p["attributed_ctr_ci95"][0] for p, r in zip(points, rate)]},
                        hovertemplate=f"{_text(name)}<br>%{{x}}<br>%{{y:.2%}}<extra></extra>")
    _mark_alerts(fig, report)
    fig = _layout(fig, "Attributed click-through rate by model version and arm (95 % Wilson interval)",
                  {"rangemode": "tozero", "tickformat": ".0%", "title": "of recommendations"}, "version (arm)")
    return fig.update_xaxes(title="trigger time (UTC)")


def _by_kind(report: dict) -> go.Figure:
    t = report["totals"]
    other = Decimal(t[F.SHARED.key]) - Decimal(t[F.PEOPLE.key]) - Decimal(t[F.OPS.key])
    parts = [(F.WORKLOAD.label, t[F.WORKLOAD.key]), (F.IDLE.label, t[F.IDLE.key]),
             ("shared: people", t[F.PEOPLE.key]), ("shared: ops", t[F.OPS.key])]
    if other:
        parts.append(("shared: ClickHouse storage", str(other)))
    fig = go.Figure()
    for name, amount in parts:
        fig.add_bar(y=[name], x=[float(amount)], orientation="h", name=name, text=[usd(amount)],
                    textposition="outside", cliponaxis=False, hovertemplate=f"{name}: {usd(amount)}<extra></extra>")
    fig.update_layout(title=f"What the window cost: {usd(t[F.TOTAL.key])} in all", height=320, showlegend=True,
                      legend_title_text="part", xaxis={**_MONEY_AXIS, "title": "USD"},
                      yaxis={"autorange": "reversed"}, margin={"t": 60, "r": 80})
    return fig


def _text(value: str) -> str:
    """A name from the data (a tenant, a model version) as plotly text: plotly renders tags
    in legends, hover boxes and annotations (a tenant named `<a href=...>` became a live link)
    and decodes &lt; &gt; &amp; back for display."""
    return html.escape(value, quote=False)


def _mark_alerts(fig: go.Figure, report: dict) -> None:
    for alert in report.get("alerts", []):
        at = datetime.fromisoformat(alert["data_ts"])
        fig.add_vline(x=at.timestamp() * 1000, line_dash="dot",
                      line_color="red" if alert["severity"] == "critical" else "orange")
        where = _text(f"{alert['tenant'] or '*'}/{alert['model_version'] or '*'}")
        fig.add_annotation(x=at, y=1, yref="paper", showarrow=False, textangle=-90, xanchor="left", yanchor="top",
                           text=f"alert: {METRIC_LABELS.get(alert['metric'], alert['metric'])} ({where})",
                           font={"color": "red"})


def _table(title: str, rows: list[dict], columns: list, note: str) -> str:
    if not rows:
        return f"<h2>{html.escape(title)}</h2><p class='note'>none</p>"
    head = "".join(f"<th>{html.escape(c.header).replace(chr(10), '<br>')}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c.cell(row))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return (f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"
            + (f"<p class='note'>{html.escape(note)}</p>" if note else ""))
