"""The clicks a retrain learns from: a window of `clicks_log` (what the sink stored), or a
JSONL file of Reckon events checked by the stream's own contract.

A click is (user, item, ts) with the user keyed by (tenant, user id): a user id is unique
only within its tenant. Searches are not stored in ClickHouse, so a retrain sees clicks
only (its query-term embeddings stay as the parent version learned them).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.core.errors import RetrainError
from reckon.streams.pipeline.contracts import Invalid, parse_batch

Click = tuple[tuple[str, str], str, float]     # ((tenant, user), item, unix seconds)

# The latest `limit` clicks of the window (ReplacingMergeTree: FINAL drops redelivered ones).
_WINDOW = (
    "SELECT tenant, user_id, item_id, toFloat64(ts) AS ts, event_id FROM clicks_log FINAL "
    "WHERE ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')} "
    "ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt64}")


def window_query(start: datetime, end: datetime, limit: int) -> tuple[str, dict]:
    return _WINDOW, {"start": start, "end": end, "limit": limit}


def read_clicks(ch: ClickHouse, start: datetime, end: datetime, limit: int) -> list[Click]:
    """The window's clicks, oldest first."""
    rows = ch.query(*window_query(start, end, limit), tag="retrain:clicks")
    return [((tenant, user), item, float(ts)) for tenant, user, item, ts, _ in reversed(rows)]


def write_events(clicks: Iterable[Click], path: Path) -> int:
    """Clicks as JSONL events of the `clicks` contract (what `read_events` takes back)."""
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for (tenant, user), item, ts in clicks:
            n += 1
            fh.write(json.dumps({"event_id": f"r{n}", "user_id": user, "item_id": item, "action": "view",
                                 "ts": ts, "tenant": tenant}) + "\n")
    return n


def read_events(path: Path, now: float, default_tenant: str = "default") -> tuple[list[Click], Counter]:
    """A JSONL file's valid clicks (searches are skipped), deduplicated by (tenant, event id);
    and what was skipped, by reason. Fails with one line if nothing is left."""
    try:
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    except OSError as exc:
        raise RetrainError(f"{path}: {exc.strerror or exc}") from None
    skipped: Counter = Counter()
    candidates = []
    for line in lines:
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            doc = None      # the contract names it below
        if isinstance(doc, dict) and "query" in doc:
            skipped["search"] += 1
        else:
            candidates.append(line)
    seen: set[tuple[str, str]] = set()
    clicks: list[Click] = []
    said: dict[str, str] = {}           # reason -> the contract's detail of its first line
    for event in parse_batch("clicks", candidates, now, default_tenant):
        if isinstance(event, Invalid):
            skipped[event.reason] += 1
            said.setdefault(event.reason, event.detail)
            continue
        if (event.tenant, event.event_id) in seen:
            skipped["duplicate"] += 1
            continue
        seen.add((event.tenant, event.event_id))
        clicks.append(((event.tenant, event.user_id), event.item_id, event.ts))
    if not clicks:
        detail = ", ".join(f"{n} {reason}" for reason, n in skipped.most_common()) or "empty file"
        top = next((reason for reason, _ in skipped.most_common() if said.get(reason)), None)
        example = f"; the first {top}: {said[top]}" if top else ""
        raise RetrainError(f"{path}: no valid click to learn from ({detail}{example})")
    return clicks, skipped
