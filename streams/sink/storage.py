"""What the sink's inserts added to ClickHouse, measured by the server, as cost rows.

Bytes come from the server's own part sizes: `system.parts` (active parts, bytes on disk,
block numbers) is read before a flush's inserts and after them. Every insert takes block
numbers above all earlier ones, so a part that appeared meanwhile holds new data when its
blocks are newer than any before; a merge of only older parts adds nothing; a merge that
took in new parts counts the share of its size that its rows not taken from older parts
hold (a merge compresses better than its parts did, so size differences would undercount
the new data, even below zero). A source table is
charged its rollups' bytes too (`cost_events` feeds `cost_minute` and `cost_hour`). This
holds while the sink is the tables' only writer: always with an embedded store; with a
server and several sink consumers, each would also count the others' parts (README, "The
sink keeps up").

Each table's bytes are split over the (tenant, model version) of the rows inserted, in
proportion to rows, as `workload` lines of event type `clickhouse:<table>`; rows that name
no tenant or no version (clicks, idle and shared cost rows) make one `shared` line. The
lines are inserted by the sink itself, idempotent by id (derived from the flush's offsets),
before the flush's offsets are committed. The lines' own bytes show in the next flush (its
`before` is this flush's `after`). A crash between a flush's inserts and its lines loses
that flush's storage charge (the re-read finds its rows stored and writes none).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.costs.pricing import PriceSheet, Quantities
from reckon.streams.sink.rows import COLUMNS

ROLLUPS = {"cost_events": ("cost_minute", "cost_hour"), "recommendations_log": (), "clicks_log": ()}
MEASURED = tuple(sorted({t for source, rollups in ROLLUPS.items() for t in (source, *rollups)}))
# Where each source table keeps a row's tenant and model version (clicks_log has no version).
_KEY_COLUMNS = {"cost_events": (4, 5), "recommendations_log": (3, 5), "clicks_log": (2, None)}
_PARTS_SQL = ("SELECT table, name, partition_id, min_block_number, max_block_number, rows, bytes_on_disk "
              "FROM system.parts WHERE active AND database = currentDatabase() AND table IN {tables:Array(String)}")

_ZERO = {"events": 0, "recommendations": 0, "wall_seconds": 0.0, "device_seconds": 0.0, "cpu_seconds": 0.0,
         "ram_gb_seconds": 0.0, "staffed_seconds": 0.0, "bytes_in": 0, "bytes_out": 0, "state_bytes": 0,
         "latencies_ms": []}


@dataclass(frozen=True)
class Part:
    partition: str
    min_block: int
    max_block: int
    rows: int
    size: int            # bytes on disk


Parts = dict[tuple[str, str], Part]   # (table, part name) -> part


def parts(ch: ClickHouse) -> Parts:
    """The measured tables' active parts, as the server reports them."""
    return {(table, name): Part(partition, int(lo), int(hi), int(rows), int(size))
            for table, name, partition, lo, hi, rows, size in
            ch.query(_PARTS_SQL, {"tables": list(MEASURED)}, tag="sink:parts")}


def bytes_written(before: Parts, after: Parts) -> dict[str, int]:
    """Per source table: bytes its inserts (and its rollups') added between two snapshots."""
    newest: Counter = Counter()
    for (table, _), part in before.items():
        newest[table] = max(newest[table], part.max_block)
    vanished = [(key[0], part) for key, part in before.items() if key not in after]
    added: Counter = Counter()
    for key, part in after.items():
        table = key[0]
        if key in before or part.max_block <= newest[table]:
            continue                       # there before, or a merge of parts that were
        if part.min_block > newest[table]:
            added[table] += part.size      # new data only
            continue
        replaced = sum(old.rows for t, old in vanished if t == table and old.partition == part.partition
                       and part.min_block <= old.min_block and old.max_block <= part.max_block)
        if part.rows > replaced:               # a merge that took in new parts: their rows' share
            added[table] += part.size * (part.rows - replaced) // part.rows
    return {source: sum(added[t] for t in (source, *rollups)) for source, rollups in ROLLUPS.items()}


def flush_id(offsets: Mapping[tuple[str, int], int]) -> str:
    """A name for a flush that a retry of the same flush shares: its topics, partitions and offsets."""
    text = ",".join(f"{topic}:{partition}:{offset}" for (topic, partition), offset in sorted(offsets.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def storage_rows(inserted: Mapping[str, Sequence[Sequence[object]]], written: Mapping[str, int],
                 sheet: PriceSheet, worker: str, flush: str, ts: datetime | None = None) -> list[list[object]]:
    """`cost_events` rows for what a flush wrote (columns as streams/sink/rows.COLUMNS)."""
    ts = ts or datetime.now(timezone.utc)
    out: list[list[object]] = []
    for table in sorted(inserted):
        rows = inserted[table]
        if not rows:
            continue
        tenant_at, version_at = _KEY_COLUMNS[table]
        keys: Counter = Counter()
        for row in rows:
            tenant, version = str(row[tenant_at]), str(row[version_at]) if version_at is not None else ""
            keys[(tenant, version) if tenant and version else ("", "")] += 1
        ordered = sorted(keys)
        for i, ((tenant, version), size) in enumerate(zip(ordered, _split(written.get(table, 0),
                                                                           [keys[k] for k in ordered]))):
            cost = sheet.price_quantities(Quantities(clickhouse_bytes=size), ts)
            row = {**_ZERO, "event_id": f"clickhouse:{flush}:{table}:{i}", "batch_id": f"clickhouse:{flush}",
                   "ts": ts, "kind": "workload" if tenant else "shared", "tenant": tenant, "model_version": version,
                   "event_type": f"clickhouse:{table}", "worker": worker, "device": "clickhouse",
                   "price_sheet_version": sheet.version, "clickhouse_bytes": size,
                   "rows_written": keys[(tenant, version)], "cost_compute_usd": cost.compute,
                   "cost_storage_usd": cost.storage, "cost_people_usd": cost.people, "cost_ops_usd": cost.ops,
                   "cost_usd": cost.total}
            out.append([row[c] for c in COLUMNS])
    return out


def _split(total: int, weights: list[int]) -> list[int]:
    """`total` in whole parts proportional to `weights`, adding up exactly (largest remainders)."""
    whole = sum(weights)
    exact = [Decimal(total) * w / whole for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (parts[i] - exact[i], i))
    for i in by_remainder[:total - sum(parts)]:
        parts[i] += 1
    return parts


class StorageMeter:
    """One sink's measurement of its flushes (see the module docstring)."""

    def __init__(self, ch: ClickHouse, sheet: PriceSheet, worker: str) -> None:
        self.ch = ch
        self.sheet = sheet
        self.worker = worker
        self._before: Parts | None = None

    def begin(self) -> None:
        """Before a flush's first insert: the parts to compare with (carried from the last flush)."""
        if self._before is None:
            self._before = parts(self.ch)

    def rows(self, inserted: Mapping[str, Sequence[Sequence[object]]], flush: str) -> list[list[object]]:
        """After a flush's inserts: its cost rows. Only on success does `after` become the next `before`."""
        after = parts(self.ch)
        lines = storage_rows(inserted, bytes_written(self._before or {}, after), self.sheet, self.worker, flush)
        self._before = after
        return lines
