"""The cost report as terminal text: readable at 80 columns, more columns with `wide`.

Every figure is printed under its name from streams/costs/figures.py; money goes through
reckon.streams.reports.format (a unit, sensible precision). JSON keeps the exact decimals.
"""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from reckon.streams.costs import figures as F
from reckon.streams.reports.format import count, share, usd
from reckon.streams.reports.tables import ReportTable, baseline, minute, report_tables, signed_usd, why_tables


def render_text(report: dict, console: Console, wide: bool = False) -> None:
    """Totals and unit costs, then the tables (streams/reports/tables.py), and the audit when
    the report has one."""
    _heading(report, console)
    _totals(report["totals"], report["window"]["idle"], console)
    if "by_version" not in report:
        return
    for table in report_tables(report):
        _table(console, table, wide)
    if "audit" in report:
        _audit(report["audit"], console)


def _heading(report: dict, console: Console) -> None:
    w, t = report["window"], report["totals"]
    who = f"tenant {escape(w['tenant'])}" if w["tenant"] else "all tenants"
    console.print(f"[bold]Reckon costs[/bold], {minute(w['start'])} to {minute(w['end'])} UTC "
                  f"({w['hours']:g} h), {who}")
    console.print(f"{count(t['recommendations'])} recommendations answering {count(t['events'])} events")


def _totals(t: dict, idle_policy: str, console: Console) -> None:
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    table.add_column(justify="left", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="left", style="dim")
    other = Decimal(t[F.SHARED.key]) - Decimal(t[F.PEOPLE.key]) - Decimal(t[F.OPS.key])
    shared = f"people {usd(t[F.PEOPLE.key])} + ops {usd(t[F.OPS.key])}" + (
        f" + storage {usd(other)}" if other else "")
    rows = [(F.WORKLOAD, "what the scored batches measured"), (F.IDLE, "reserved capacity no batch used"),
            (F.SHARED, shared), (F.TOTAL, "workload + idle + shared")]
    if Decimal(t[F.UNALLOCATED.key]) != 0:
        rows.append((F.UNALLOCATED, "idle kept separate" if idle_policy == "separate" else "no traffic to carry it"))
    for figure, note in rows:
        table.add_row(figure.label, usd(t[figure.key]), note)
    table.add_row("", "", "")
    spread = "idle and shared" if idle_policy == "shared" else "shared (idle kept separate)"
    for figure, note in ((F.WORKLOAD_PER_1K, ""), (F.ATTRIBUTED_PER_1K, f"+ {spread} by workload cost"),
                         (F.FULLY_LOADED_PER_1K, "total cost per 1,000 recommendations")):
        table.add_row(figure.label, usd(t[figure.key]), note)
    table.add_row(F.IDLE_SHARE.label, share(t[F.IDLE_SHARE.key]), f"of {usd(t[F.CAPACITY.key])} paid capacity")
    console.print(table)


def _table(console: Console, table: ReportTable, wide: bool) -> None:
    console.print()
    if not table.rows:
        console.print(f"[bold]{table.title}[/bold]: none")
        return
    shown = [c for c in table.columns if wide or not c.wide_only]
    out = Table(title=table.title, title_justify="left", title_style="bold", box=None, pad_edge=False,
                header_style="bold")
    # The name column folds: a long tenant or version name (ids run to 128 characters) takes
    # lines, not the numbers' width, which rich would cut to "…" in every row.
    for i, column in enumerate(shown):
        if i == 0:
            out.add_column(column.header, justify="left", overflow="fold", min_width=12)
        else:
            out.add_column(column.header, justify="right", no_wrap=True)
    for row in table.rows:
        out.add_row(*[Text(column.cell(row)) for column in shown])   # data: no markup
    console.print(out)
    if table.note:
        console.print(f"[dim]{table.note}[/dim]")


def _audit(audit: dict, console: Console) -> None:
    same_usd = audit["raw_usd"] == audit["minute_usd"] == audit["hour_usd"]
    same_rows = audit["raw_rows"] == audit["stored_rows"] == audit["distinct_ids"] == audit["minute_rows"]
    console.print("[bold]Audit[/bold] (all time): raw cost rows "
                  f"{count(audit['raw_rows'])} ({count(audit['stored_rows'])} stored, "
                  f"{count(audit['distinct_ids'])} distinct ids, {count(audit['minute_rows'])} in the minute rollup); "
                  f"raw {usd(audit['raw_usd'])}, minute rollup {usd(audit['minute_usd'])}, "
                  f"hour rollup {usd(audit['hour_usd'])}: "
                  + ("[green]consistent[/green]" if same_usd and same_rows else "[red]MISMATCH[/red]"))


def render_why(answer: dict, console: Console) -> None:
    """`reckon costs --why`: the two windows, the change by part, the workload by version."""
    b, a = answer["before"], answer["after"]
    who = f"tenant {escape(a['window']['tenant'])}" if a["window"]["tenant"] else "all tenants"
    console.print(f"[bold]Why {F.FULLY_LOADED_PER_1K.label} moved[/bold], {who}: "
                  f"{minute(a['window']['start'])} to {minute(a['window']['end'])} UTC against {baseline(answer)}")
    console.print(f"recommendations {count(b['recommendations'])} -> {count(a['recommendations'])}; "
                  f"{F.TOTAL.label} {usd(b[F.TOTAL.key])} -> {usd(a[F.TOTAL.key])}")
    if answer["comparable"]:
        per_1k = answer["fully_loaded_cost_per_1k"]
        console.print(f"{F.FULLY_LOADED_PER_1K.label} {usd(per_1k['before_usd'])} -> {usd(per_1k['after_usd'])} "
                      f"({signed_usd(per_1k['change_usd'])})")
        for table in why_tables(answer):
            _table(console, table, wide=True)
        console.print()
    console.print(escape(answer["summary"]))
