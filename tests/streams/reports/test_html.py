"""The HTML report in a real browser: headless Chromium (Debian's `chromium`; .ci/run installs
it) loads the page, plotly draws it, and the DOM it leaves is checked chart by chart: traces
drawn, every series named in a legend, y-axes from zero, alerts marked, money with a unit."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reckon.streams.costs.alert_engine import ALERT_COLUMNS
from reckon.streams.costs.idle import IntervalAccountant, Reserved
from reckon.streams.reports.html import write_html
from reckon.streams.reports.report import ReportRequest, build_report
from reckon.streams.sink.rows import Rows, recommendation_row, write, write_events

from .test_report import SHEET, _batch, _window_of_its_own

pytestmark = pytest.mark.integration


class Chart:
    def __init__(self) -> None:
        self.title = ""
        self.traces = 0
        self.points = 0
        self.legend: list[str] = []
        self.yticks: list[str] = []
        self.xticks: list[str] = []
        self.annotations: list[str] = []


class PlotDom(HTMLParser):
    """The charts plotly drew, read from the DOM Chromium dumped after the page's scripts ran."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[Chart] = []
        self._open: list[tuple[str, str]] = []   # (tag, class) of the open elements
        self.page_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        classes = dict(attrs).get("class") or ""
        if "plot-container" in classes.split():
            self.charts.append(Chart())
        if self.charts and tag == "g" and "trace" in classes.split():
            self.charts[-1].traces += 1
        if self.charts and tag == "path" and "point" in classes.split():
            self.charts[-1].points += 1
        self._open.append((tag, classes))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if any(tag in ("script", "style") for tag, _ in self._open):
            return
        self.page_text.append(data)
        if not self.charts or not data.strip():
            return
        chart, inside = self.charts[-1], " ".join(c for _, c in self._open)
        if "gtitle" in inside:
            chart.title += data
        elif "legendtext" in inside:
            chart.legend.append(data)
        elif "ytick" in inside:
            chart.yticks.append(data)
        elif "xtick" in inside:
            chart.xticks.append(data)
        elif "annotation-text" in inside:
            chart.annotations.append(data)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed: apt-get install -y chromium (.ci/run does this)"
    return found


def _dump_dom(page: Path, profile: Path) -> str:
    out = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-background-networking", "--no-first-run", f"--user-data-dir={profile}",
                          "--virtual-time-budget=15000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and "<body" in out.stdout, out.stderr[-2000:]
    return out.stdout


def test_the_html_report_draws_every_chart_in_a_browser(clickhouse, tmp_path) -> None:
    tag = uuid.uuid4().hex[:8]
    start = _window_of_its_own(tag, days=15)
    worker = f"w-{tag}"
    acc = IntervalAccountant(SHEET, Reserved(2, 2), worker, "cpu", interval_s=10, started_at=start.timestamp())
    batches = [_batch(f"acme-{tag}", "v1", start.timestamp() + 20 + 30 * i, 10, 0.4, worker) for i in range(8)]
    # a tenant id is whatever a producer wrote (printable, 128 characters): markup is text in the report
    globex = f'<a href="https://evil.example/">globex-{tag}</a>'
    batches += [_batch(globex, "v2", start.timestamp() + 35 + 60 * i, 30, 1.0, worker) for i in range(4)]
    for event in sorted(batches, key=lambda e: e["ts"]):
        acc.observe(event)
    write_events(clickhouse, batches + acc.close_all(now=start.timestamp() + 300))
    # Recommendations and attributed clicks, so the click-through chart has points.
    logs = Rows()
    for i in range(12):
        at = start.timestamp() + 30 * i
        logs.add("recommendations_log", [recommendation_row({
            "user_id": f"u{i}", "items": ["a", "b"], "model_version": "v1", "arm": "primary",
            "trigger_event_id": f"{tag}-r{i}", "ts": at + 0.05, "trigger_ts": at, "tenant": f"acme-{tag}"})])
        if i % 3 == 0:
            logs.add("clicks_log", [[f"{tag}-c{i}", datetime.fromtimestamp(at + 5, timezone.utc), f"acme-{tag}",
                                     f"u{i}", "a", "view", "", None]])
    write(clickhouse, logs)
    spike = start + timedelta(minutes=2)
    clickhouse.insert("alerts", [[f"html-{tag}", spike, "anomaly", "workload_cost_per_1k_usd", f"acme-{tag}", "v1",
                                  "critical", 1, 0, "60m", "{}", spike]], ALERT_COLUMNS)
    report = build_report(clickhouse, ReportRequest(hours=0.25, end=start + timedelta(minutes=10), series=True))
    assert report["alerts"], "the alert should be in the window"

    dom = PlotDom()
    page = _dump_dom(write_html(report, tmp_path / "report.html"), tmp_path / "profile")
    assert "evil.example" not in "".join(re.findall(r"<a\b[^>]*>", page)), "a tenant's markup became a link"
    dom.feed(page)
    charts = {re.sub(r"\s+", " ", c.title).split(" (")[0]: c for c in dom.charts}
    assert len(dom.charts) == 6, [c.title for c in dom.charts]
    for title, chart in charts.items():
        assert chart.traces >= 1, f"{title}: nothing drawn"
        assert chart.legend, f"{title}: no legend"
        values = chart.xticks if title.startswith("What the window cost") else chart.yticks   # bars lie flat
        assert values and values[0] in ("$0", "0%"), f"{title}: the value axis starts at {values[:1]}"
    per_1k = charts["Attributed cost per 1,000 recommendations by model version"]
    assert set(per_1k.legend) == {"v1", "v2"} and per_1k.points >= 8
    assert any("alert" in text and "workload cost per 1k" in text for text in per_1k.annotations)
    assert set(charts["Workload cost per 1,000 recommendations by model version"].legend) == {"v1", "v2"}
    assert set(charts["Attributed cost per minute by tenant"].legend) == {f"acme-{tag}", globex}
    assert charts["Idle share of paid capacity"].points >= 5
    assert charts["Attributed click-through rate by model version and arm"].legend == ["v1 (primary)"]
    kinds = next(c for t, c in charts.items() if t.startswith("What the window cost"))
    assert {"workload cost", "idle cost", "shared: people", "shared: ops"} <= set(kinds.legend)
    text = " ".join(dom.page_text)
    assert "attributed cost per 1k" in text and "fully loaded cost per 1k" in text and "idle share" in text
    amounts = re.findall(r"\$([\d,]+(?:\.\d+)?)", text)
    assert amounts
    for amount in amounts:                       # $1,234.57 or three significant digits: $0.00369
        whole, _, fraction = amount.partition(".")
        assert len(fraction) <= 2 if whole.strip("0,") else len(fraction.lstrip("0")) <= 3, amount
    assert "_usd" not in text                                                       # no raw JSON keys
