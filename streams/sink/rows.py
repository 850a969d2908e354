"""Kafka messages -> ClickHouse rows, written exactly once.

Three tables are fed: `cost_events` (topic `cost-events`), `recommendations_log`
(topic `recommendations`) and `clicks_log` (topic `clicks`). Kafka delivers at least
once; `write` makes every insert idempotent by looking up, in the rows' ts range, which
ids are already stored and inserting only the others. Nothing is claimed before the
insert succeeds (a failed insert leaves nothing behind that would hide the retry), and
the caller (streams/sink/consumer.py) commits offsets only after `write` returns.

Hostile messages never stall the sink: a message that cannot become rows raises
`BadMessage` (every string must be valid Unicode, every number finite), and rows that
ClickHouse refuses for their values (`ClickHouseDataError`) are split in halves, a
message's rows kept together, until the refused messages are found; they come back in
`Written.rejected` (the caller dead-letters them, none of their rows stored) and the rest
is stored. Raises `ClickHouseUnavailable` (retryable) or
`ClickHouseError` (ClickHouse itself is failing: nothing is set aside).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

import msgspec

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.core.errors import ClickHouseDataError, ReckonError
from reckon.streams.pipeline.contracts import Invalid, parse_event

log = logging.getLogger(__name__)

COLUMNS = ("event_id", "batch_id", "ts", "kind", "tenant", "model_version", "event_type", "worker",
           "device", "price_sheet_version", "events", "recommendations", "wall_seconds",
           "device_seconds", "cpu_seconds", "ram_gb_seconds", "staffed_seconds", "bytes_in", "bytes_out",
           "state_bytes", "clickhouse_bytes", "rows_written", "latencies_ms", "cost_compute_usd",
           "cost_storage_usd", "cost_people_usd", "cost_ops_usd", "cost_usd")
REC_COLUMNS = ("rec_id", "trigger_ts", "ts", "tenant", "user_id", "model_version", "arm", "trigger_event_id",
               "items", "latency_ms")
CLICK_COLUMNS = ("event_id", "ts", "tenant", "user_id", "item_id", "action", "session_id", "price")

TOPIC_TABLES = {"cost-events": "cost_events", "recommendations": "recommendations_log",
                "clicks": "clicks_log"}
_TABLE_COLUMNS = {"cost_events": COLUMNS, "recommendations_log": REC_COLUMNS,
                  "clicks_log": CLICK_COLUMNS}
# Which rows are stored already, per table: constant SQL (identifiers fixed here), values
# bound. A row's identity: a cost event's id; a click's (tenant, user_id, event_id), as the
# worker deduplicates (per user state: two users' events may share an id, and both count);
# a recommendation's (tenant, user_id, rec_id).
_STORED_SQL = {
    "cost_events": "SELECT event_id FROM cost_events WHERE ts >= {lo:DateTime64(3, 'UTC')} "
                   "AND ts <= {hi:DateTime64(3, 'UTC')} AND event_id IN {ids:Array(String)}",
    "recommendations_log": "SELECT tenant, user_id, rec_id FROM recommendations_log "
                           "WHERE trigger_ts >= {lo:DateTime64(3, 'UTC')} "
                           "AND trigger_ts <= {hi:DateTime64(3, 'UTC')} AND rec_id IN {ids:Array(String)}",
    "clicks_log": "SELECT tenant, user_id, event_id FROM clicks_log WHERE ts >= {lo:DateTime64(3, 'UTC')} "
                  "AND ts <= {hi:DateTime64(3, 'UTC')} AND event_id IN {ids:Array(String)}",
}
# Where a row keeps its (tenant, user_id): the rest of its identity (above)
_OWNER = {"recommendations_log": (3, 4), "clicks_log": (2, 3)}
_PRICE_Q = Decimal("0.000001")   # clicks_log.price is Decimal64(6)
_decode = msgspec.json.decode     # JSON as the json module reads it, faster; errors are ValueErrors


class BadMessage(ReckonError):
    """A message that cannot become a row (malformed JSON or fields); dead-lettered."""


@dataclass(frozen=True, slots=True)
class Source:
    """The Kafka message rows came from: what is dead-lettered if ClickHouse refuses them."""
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass
class Rows:
    """Rows for one flush, per table, each with the message it came from; the first column
    of every row is its id (see `_ts` for its ts)."""

    tables: dict[str, list[list[object]]] = field(default_factory=dict)
    sources: dict[str, list[Source | None]] = field(default_factory=dict)

    def add(self, table: str, rows: list[list[object]], source: Source | None = None) -> None:
        self.tables.setdefault(table, []).extend(rows)
        self.sources.setdefault(table, []).extend([source] * len(rows))

    def __len__(self) -> int:
        return sum(len(r) for r in self.tables.values())


@dataclass
class Written:
    inserted: dict[str, int] = field(default_factory=dict)              # rows inserted per table
    rejected: list[tuple[Source | None, str]] = field(default_factory=list)   # refused messages, why


def rows_from_event(event: dict) -> list[list[object]]:
    """One `cost_events` row per allocation line; quantities are the line's share of the event's.
    ClickHouse bytes and rows are not a batch's: the sink measures them (streams/sink/storage.py)."""
    usage = event["usage"]
    event_id, kind, worker, device, sheet = (_text(event, name) for name in (
        "event_id", "kind", "worker", "device", "price_sheet_version"))
    ts = datetime.fromtimestamp(float(event["ts"]), timezone.utc)
    wall = float(usage["wall_seconds"])
    ram_gb_seconds = float(usage["ram_gb_seconds"]) if "ram_gb_seconds" in usage \
        else float(usage.get("ram_gb", 0.0)) * wall
    # Events from before staffed seconds charged people and ops on their wall time (not idle's).
    staffed = float(usage.get("staffed_seconds", 0.0 if event["kind"] == "idle" else wall))
    rows = []
    for i, line in enumerate(event["lines"]):
        share = float(line["share"])
        cost = line["cost"]
        rows.append([
            f"{event_id}:{i}", event_id, ts, kind, _text(line, "tenant"), _text(line, "model_version"),
            _text(line, "event_type"), worker, device, sheet, int(line["events"]), int(line["recommendations"]),
            wall * share, float(usage["device_seconds"]) * share, float(usage["cpu_seconds"]) * share,
            ram_gb_seconds * share, staffed * share, round(usage["bytes_in"] * share),
            round(usage["bytes_out"] * share), round(usage["state_bytes"] * share), 0, 0,
            _latencies_ms(line), Decimal(cost["compute"]), Decimal(cost["storage"]),
            Decimal(cost["people"]), Decimal(cost["ops"]), Decimal(cost["total"]),
        ])
    return rows


def _latencies_ms(line: dict) -> list[float]:
    if "latencies_us" in line:
        return [us / 1000 for us in line["latencies_us"]]
    return [float(ms) for ms in line["latencies_ms"]]   # events written before latencies went in microseconds
def _text(doc: dict, name: str) -> str:
    value = doc[name]
    if not isinstance(value, str):
        raise BadMessage(f"{name} must be a string, not {type(value).__name__}")
    return value


def rec_id(trigger: str, version: str, ts: float, tenant: str, user: str) -> str:
    """Names one published message: its trigger, version and publication ms, and its user
    (a 64-bit hash of tenant and user id): two users whose events share an id, answered in the
    same ms, are two recommendations. Ids stored before the user part (`legacy_rec_id`) are
    still recognised on a re-read."""
    owner = hashlib.blake2b(f"{tenant}\x00{user}".encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{legacy_rec_id(trigger, version, ts)}:{owner}"


def legacy_rec_id(trigger: str, version: str, ts: float) -> str:
    return f"{trigger}:{version}:{round(ts * 1000)}"


def recommendation_row(doc: dict) -> list[object]:
    """A `recommendations_log` row; rec_id names this published message (`rec_id`).

    Attribution runs on the triggering event's time (`trigger_ts`); a message without one
    is attributed on its publication time.
    """
    ts = float(doc["ts"])
    trigger_ts = float(doc.get("trigger_ts", ts))
    items = doc["items"]
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BadMessage("items must be a list of item ids")
    fields = [doc["user_id"], doc["model_version"], doc["trigger_event_id"], doc.get("tenant", ""), doc.get("arm", "")]
    if not all(isinstance(f, str) for f in fields):
        raise BadMessage("user_id, model_version, trigger_event_id, tenant and arm must be strings")
    user, version, trigger, tenant, arm = fields
    return [rec_id(trigger, version, ts, tenant, user), datetime.fromtimestamp(trigger_ts, timezone.utc),
            datetime.fromtimestamp(ts, timezone.utc), tenant, user, version, arm, trigger, items,
            float(doc.get("latency_ms", 0.0))]


def click_row(raw: bytes, default_tenant: str, tenants: Collection[str] | None = None) -> list[object] | None:
    """A `clicks_log` row, or None for a click the worker's contract refuses (the scorer
    dead-letters those), a tenant outside `tenants` (RECKON_TENANTS) included."""
    event = parse_event("clicks", raw, default_tenant=default_tenant, tenants=tenants)
    if isinstance(event, Invalid):
        return None
    price = None if event.price is None else Decimal(repr(event.price)).quantize(_PRICE_Q)
    return [event.event_id, datetime.fromtimestamp(event.ts, timezone.utc), event.tenant, event.user_id,
            event.item_id, event.action, event.session_id, price]


def rows_from_message(table: str, value: bytes, default_tenant: str = "default",
                      tenants: Collection[str] | None = None) -> list[list[object]]:
    """The rows one Kafka message becomes in `table`; raises BadMessage when it cannot be stored."""
    if table not in _TABLE_COLUMNS:
        raise ValueError(f"table {table!r} is not sunk; known: {sorted(_TABLE_COLUMNS)}")
    try:
        if table == "clicks_log":
            row = click_row(value, default_tenant, tenants)
            rows = [] if row is None else [row]
        elif table == "cost_events":
            rows = rows_from_event(_decode(value))
        else:
            rows = [recommendation_row(_decode(value))]
        for row in rows:
            _check_values(row)
        return rows
    except BadMessage:
        raise
    except Exception as exc:   # any message, however it fails to become rows, is set aside alone
        raise BadMessage(f"{table}: {type(exc).__name__}: {exc}"[:300]) from None


def _check_values(values: Sequence[object]) -> None:
    """What ClickHouse columns hold: strings of valid Unicode, finite numbers, datetimes."""
    for value in values:
        if isinstance(value, str):
            value.encode("utf-8")
        elif isinstance(value, float) and not math.isfinite(value):
            raise BadMessage(f"a non-finite number ({value})")
        elif isinstance(value, Decimal) and not value.is_finite():
            raise BadMessage(f"a non-finite amount ({value})")
        elif isinstance(value, list):
            _check_values(value)


def _ts(table: str, row: Sequence[object]) -> datetime:
    """The ts the dedup lookup ranges over: cost_events.ts, recommendations_log.trigger_ts, clicks_log.ts."""
    return row[2] if table == "cost_events" else row[1]  # type: ignore[return-value]


def stored_ids_query(table: str, ids: list[str], lo: datetime, hi: datetime) -> tuple[str, dict]:
    """SQL and params listing which of `ids` (rows with ts in [lo, hi]) `table` holds already."""
    if table not in _STORED_SQL:
        raise ValueError(f"table {table!r} is not sunk; known: {sorted(_STORED_SQL)}")
    return _STORED_SQL[table], {"lo": lo, "hi": hi, "ids": ids}


def _identities(table: str, row: Sequence[object]) -> tuple[tuple, ...]:
    """The identities a row may be stored under (see `_STORED_SQL`), its own first, each ending
    in the id the lookup asks for; a recommendation also under its rec_id from before rec_id
    named its user (`legacy_rec_id`), so a re-read across the upgrade is not stored twice."""
    owner = _OWNER.get(table)
    if owner is None:
        return (row[0],),
    who = (row[owner[0]], row[owner[1]])
    if table == "recommendations_log":
        return (*who, row[0]), (*who, str(row[0]).rsplit(":", 1)[0])
    return (*who, row[0]),


def fresh_rows(ch: ClickHouse, table: str, rows: Sequence[list[object]]) -> list[list[object]]:
    """The rows whose identity (see `_STORED_SQL`) is neither stored already nor repeated
    earlier in `rows`."""
    if not rows:
        return []
    stamps = [_ts(table, r) for r in rows]
    identities = [_identities(table, r) for r in rows]
    ids = sorted({str(identity[-1]) for each in identities for identity in each})
    sql, params = stored_ids_query(table, ids, min(stamps), max(stamps))
    seen = {tuple(r) for r in ch.query(sql, params, tag=f"sink:dedup:{table}")}
    fresh = []
    for row, each in zip(rows, identities):
        if not seen.isdisjoint(each):
            continue
        seen.add(each[0])
        fresh.append(row)
    return fresh


def write(ch: ClickHouse, rows: Rows, inserted: dict[str, list[list[object]]] | None = None) -> Written:
    """Insert what is not stored yet, table by table (cost first): rows inserted per table,
    and the messages whose rows ClickHouse refused on their own. `inserted` collects the
    rows actually inserted, per table (what the sink's storage meter attributes bytes to).

    A retry after a partial failure re-runs the lookup, so tables already written are skipped.
    `inserted`, kept by the caller across retries of one flush, gets each table's rows that were
    not stored when the flush first tried that table: the rows this flush stores, even when an
    insert landed but its answer was lost (the retry then finds them stored and skips them).
    """
    written = Written()
    for table in ("cost_events", "recommendations_log", "clicks_log"):
        batch = rows.tables.get(table)
        if batch:
            written.inserted[table] = _write_table(ch, table, batch, rows.sources[table], written.rejected,
                                                   inserted)
    return written


def _write_table(ch: ClickHouse, table: str, rows: list[list[object]], sources: list[Source | None],
                 rejected: list[tuple[Source | None, str]], inserted: dict[str, list[list[object]]] | None) -> int:
    """Rows into `table`. If ClickHouse refuses them for their values, the messages are
    split in halves until each refused message is alone: its rows are stored all or none
    (one insert), and it is added to `rejected`."""
    try:
        fresh = fresh_rows(ch, table, rows)
        if inserted is not None:
            inserted.setdefault(table, fresh)      # the first attempt's: an insert whose answer was lost stored them
        return ch.insert(table, fresh, _TABLE_COLUMNS[table], tag=f"sink:insert:{table}")
    except ClickHouseDataError as exc:
        messages = [i for i in range(len(rows)) if i == 0 or sources[i] is not sources[i - 1]]
        if len(messages) == 1:
            rejected.append((sources[0], str(exc)[:300]))
            return 0
    mid = messages[len(messages) // 2]
    # (the halves' rows are already in `inserted`, refused ones included: they take a share of
    # no bytes but a share of the split, a rare case not worth a second lookup)
    return (_write_table(ch, table, rows[:mid], sources[:mid], rejected, None)
            + _write_table(ch, table, rows[mid:], sources[mid:], rejected, None))


def write_events(ch: ClickHouse, events: Sequence[dict]) -> int:
    """Insert the rows of these cost events not stored yet; returns rows inserted."""
    rows = Rows()
    for event in events:
        rows.add("cost_events", rows_from_event(event))
    return write(ch, rows).inserted.get("cost_events", 0)
