"""Cost events -> ClickHouse `cost_events`, exactly once.

Kafka delivers at least once; the sink makes the insert idempotent: rows whose
event_id is already stored are dropped before the insert (this process is the only
writer for its partitions), and the caller commits offsets only after `write` returns.
`ClickHouseUnavailable` is retried with backoff; nothing is acknowledged meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from decimal import Decimal

from streams.clickhouse import ClickHouse
from streams.errors import ClickHouseUnavailable

log = logging.getLogger(__name__)

COLUMNS = ("event_id", "batch_id", "ts", "kind", "tenant", "model_version", "event_type", "worker",
           "device", "price_sheet_version", "events", "recommendations", "wall_seconds",
           "device_seconds", "cpu_seconds", "bytes_in", "bytes_out", "state_bytes", "rows_written",
           "latencies_ms", "cost_compute_usd", "cost_storage_usd", "cost_people_usd",
           "cost_ops_usd", "cost_usd")


def rows_from_event(event: dict) -> list[list[object]]:
    """One row per allocation line; quantities are the line's share of the batch's usage."""
    usage = event["usage"]
    ts = datetime.fromtimestamp(event["ts"], timezone.utc)
    rows = []
    for i, line in enumerate(event["lines"]):
        share = line["share"]
        cost = line["cost"]
        rows.append([
            f"{event['event_id']}:{i}", event["event_id"], ts, event["kind"], line["tenant"],
            line["model_version"], line["event_type"], event["worker"], event["device"],
            event["price_sheet_version"], line["events"], line["recommendations"],
            usage["wall_seconds"] * share, usage["device_seconds"] * share,
            usage["cpu_seconds"] * share, round(usage["bytes_in"] * share),
            round(usage["bytes_out"] * share), round(usage["state_bytes"] * share), 1,
            line["latencies_ms"], Decimal(cost["compute"]), Decimal(cost["storage"]),
            Decimal(cost["people"]), Decimal(cost["ops"]), Decimal(cost["total"]),
        ])
    return rows


def decode(values: Iterable[bytes]) -> list[dict]:
    return [json.loads(v) for v in values]


def _new_rows(ch: ClickHouse, rows: Sequence[list[object]]) -> list[list[object]]:
    ids = [r[0] for r in rows]
    days = sorted({r[2].date() for r in rows})
    stored = {r[0] for r in ch.query(
        "SELECT event_id FROM cost_events WHERE toDate(ts) IN {days:Array(Date)} "
        "AND event_id IN {ids:Array(String)}", {"days": days, "ids": ids}, tag="sink:dedup")}
    seen: set[str] = set()
    fresh = []
    for row in rows:
        if row[0] not in stored and row[0] not in seen:
            seen.add(row[0])
            fresh.append(row)
    return fresh


def write(ch: ClickHouse, events: Sequence[dict]) -> int:
    """Insert the rows of these cost events not stored yet; returns rows inserted."""
    rows = [row for event in events for row in rows_from_event(event)]
    if not rows:
        return 0
    fresh = _new_rows(ch, rows)
    return ch.insert("cost_events", fresh, COLUMNS, tag="sink:insert")


async def write_with_retry(ch: ClickHouse, events: Sequence[dict], max_backoff_s: float = 5.0,
                           should_stop: "asyncio.Event | None" = None) -> int:
    """Retry while ClickHouse is unavailable; other errors propagate (and crash loudly)."""
    delay = 0.1
    while True:
        try:
            return await asyncio.to_thread(write, ch, events)
        except ClickHouseUnavailable as exc:
            if should_stop is not None and should_stop.is_set():
                raise
            log.warning("cost sink: %s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
