"""Prices in ClickHouse, and history re-priced under any mirrored price sheet.

`cost_events` keeps the quantities of every row; `prices` keeps every sheet version's
effective-dated unit prices. `reprice_query` prices each stored row with the block in
effect at the row's ts, with the same formula as `PriceSheet.price_quantities`:

    compute = (cpu_seconds x vcpu_hour + device_seconds x gpu_hour(device)
               + ram_gb_seconds x gb_ram_hour) / 3600
    storage = state_bytes/1e9 x state_gb_month x wall_hours/730
              + bytes_in/1e9 x kafka_gb_in + bytes_out/1e9 x kafka_gb_out
              + clickhouse_bytes/1e9 x clickhouse_gb_month
    people, ops = staffed_hours x people_hour, ops_hour   (shared rows only, from 0014 on)

Before a sheet's first block, the first block applies (as `PriceSheet.at`). Components are
computed at 24 decimal places and rounded to 12, as Python quantizes them, so a row priced
under its ingestion sheet comes back to the last digit (allocation across a batch's lines
and float quantities aside, which move the 12th place at most: `price_change` calls a
group's change within that rounding 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.core.errors import PriceSheetError
from reckon.streams.costs.pricing import PriceSheet

REPRICE_GROUPS = ("tenant", "model_version", "kind", "event_type", "worker", "device")
_PRICE_COLUMNS = ("sheet_version", "name", "device", "usd", "effective_from")

_STORED_PRICES = ("SELECT name, device, usd, effective_from FROM prices FINAL "
                  "WHERE sheet_version = {sheet_version:String}")

# The sheet as one row of arrays indexed by block (sorted by effective_from); GPU prices per
# block sorted longest key first, as PriceSheet.gpu_hour_for matches them.
_SHEET = """
    SELECT
        groupArray(effective_from) AS starts,
        groupArray(vcpu_hour) AS vcpu_hour, groupArray(gb_ram_hour) AS gb_ram_hour,
        groupArray(state_gb_month) AS state_gb_month, groupArray(kafka_gb_in) AS kafka_gb_in,
        groupArray(kafka_gb_out) AS kafka_gb_out, groupArray(clickhouse_gb_month) AS clickhouse_gb_month,
        groupArray(people_hour) AS people_hour, groupArray(ops_hour) AS ops_hour,
        groupArray(gpu_keys) AS gpu_keys, groupArray(gpu_usd) AS gpu_usd
    FROM
    (
        SELECT
            effective_from,
            anyIf(usd, name = 'vcpu_hour') AS vcpu_hour, anyIf(usd, name = 'gb_ram_hour') AS gb_ram_hour,
            anyIf(usd, name = 'state_gb_month') AS state_gb_month, anyIf(usd, name = 'kafka_gb_in') AS kafka_gb_in,
            anyIf(usd, name = 'kafka_gb_out') AS kafka_gb_out,
            anyIf(usd, name = 'clickhouse_gb_month') AS clickhouse_gb_month,
            anyIf(usd, name = 'people_hour') AS people_hour, anyIf(usd, name = 'ops_hour') AS ops_hour,
            arraySort(t -> (-length(t.1), t.1), groupArrayIf((device, usd), name = 'gpu_hour')) AS gpu,
            arrayMap(t -> t.1, gpu) AS gpu_keys, arrayMap(t -> t.2, gpu) AS gpu_usd
        FROM prices FINAL
        WHERE sheet_version = {sheet_version:String}
        GROUP BY effective_from
        ORDER BY effective_from
    )"""

_ROWS = """
    SELECT
        {groups},
        e.cost_usd AS row_stored_usd,
        greatest(1, arrayCount(x -> x <= e.ts, s.starts)) AS b,
        s.gpu_keys[b] AS keys,
        arrayFirstIndex(k -> k != 'default' AND position(lower(e.device), k) > 0, keys) AS matched,
        if(NOT startsWith(e.device, 'cuda'), toDecimal64(0, 12),
           if(matched > 0, s.gpu_usd[b][matched],
              if(indexOf(keys, 'default') > 0, s.gpu_usd[b][indexOf(keys, 'default')], toDecimal64(0, 12))))
            AS gpu_hour,
        toDecimal128(round((toDecimal128(e.cpu_seconds, 12) * s.vcpu_hour[b]
                            + toDecimal128(e.device_seconds, 12) * gpu_hour
                            + toDecimal128(e.ram_gb_seconds, 12) * s.gb_ram_hour[b]) / 3600, 12), 12)
            AS row_compute_usd,
        toDecimal128(round(toDecimal128(e.state_bytes, 0) * s.state_gb_month[b] * toDecimal128(e.wall_seconds, 12)
                           / 2628000000000000
                           + (toDecimal128(e.bytes_in, 0) * s.kafka_gb_in[b]
                              + toDecimal128(e.bytes_out, 0) * s.kafka_gb_out[b]
                              + toDecimal128(e.clickhouse_bytes, 0) * s.clickhouse_gb_month[b]) / 1000000000, 12), 12)
            AS row_storage_usd,
        toDecimal128(round(toDecimal128(e.staffed_seconds, 12) * s.people_hour[b] / 3600, 12), 12) AS row_people_usd,
        toDecimal128(round(toDecimal128(e.staffed_seconds, 12) * s.ops_hour[b] / 3600, 12), 12) AS row_ops_usd
    FROM cost_events AS e FINAL
    CROSS JOIN ({sheet}) AS s
    WHERE e.ts >= {{start:DateTime64(3, 'UTC')}} AND e.ts < {{end:DateTime64(3, 'UTC')}}{tenant_filter}"""

_REPRICE = """SELECT
    {groups},
    sum(row_stored_usd) AS stored_usd,
    sum(row_compute_usd) AS compute_usd,
    sum(row_storage_usd) AS storage_usd,
    sum(row_people_usd) AS people_usd,
    sum(row_ops_usd) AS ops_usd,
    sum(row_compute_usd + row_storage_usd + row_people_usd + row_ops_usd) AS repriced_usd,
    count() AS cost_rows
FROM ({rows})
GROUP BY {groups}
ORDER BY {groups}"""


def reprice_query(sheet_version: str, start: datetime, end: datetime,
                  group_by: Sequence[str] = ("model_version",), tenant: str | None = None) -> tuple[str, dict]:
    """Stored vs re-priced cost per group over [start, end) under `sheet_version` (from `prices`).

    Group columns come from REPRICE_GROUPS only; every value is bound.
    """
    unknown = [g for g in group_by if g not in REPRICE_GROUPS]
    if not group_by or unknown:
        raise ValueError(f"group_by must be a non-empty subset of {REPRICE_GROUPS}, got {list(group_by)}")
    groups = ", ".join(dict.fromkeys(group_by))   # keep order, drop repeats: deterministic SQL
    rows = _ROWS.format(groups=", ".join(f"e.{g} AS {g}" for g in dict.fromkeys(group_by)), sheet=_SHEET,
                        tenant_filter=" AND e.tenant = {tenant:String}" if tenant is not None else "")
    params: dict[str, object] = {"sheet_version": sheet_version, "start": start, "end": end}
    if tenant is not None:
        params["tenant"] = tenant
    return _REPRICE.format(groups=groups, rows=rows), params


# A stored row is the sum of its lines' shares, each rounded to 12 places, and its float
# quantities convert a little differently in SQL: a re-priced row may differ from the
# stored one by a few units of the 12th place under the very same prices. A group's change
# within this many such units per row is that rounding, not a change of price.
ROUNDING_PER_ROW_USD = Decimal("1e-11")


def price_change(stored: Decimal, repriced: Decimal, rows: int) -> Decimal:
    """`repriced - stored`, 0 where it is within the rounding of `rows` stored rows."""
    change = repriced - stored
    return Decimal(0) if abs(change) <= ROUNDING_PER_ROW_USD * rows else change


def reprice(ch: ClickHouse, sheet_version: str, start: datetime, end: datetime,
            group_by: Sequence[str] = ("model_version",), tenant: str | None = None) -> list[dict]:
    if not stored_prices(ch, sheet_version):
        raise PriceSheetError(sheet_version, "no such sheet version in ClickHouse `prices`; load it first")
    sql, params = reprice_query(sheet_version, start, end, group_by, tenant)
    return ch.query_dicts(sql, params, tag="costs:reprice")


def stored_prices(ch: ClickHouse, sheet_version: str) -> set[tuple[str, str, Decimal, datetime]]:
    rows = ch.query(_STORED_PRICES, {"sheet_version": sheet_version}, tag="prices:read")
    return {(name, device, Decimal(usd), _utc(ts)) for name, device, usd, ts in rows}


def sync_prices(ch: ClickHouse, sheet: PriceSheet) -> int:
    """Mirror a sheet into `prices`; returns rows inserted (0 when already there).

    A version already stored with different prices is an error: history re-priced under a
    version must mean one set of prices.
    """
    wanted = {(str(r[1]), str(r[2]), Decimal(r[3]), _utc(r[4])) for r in sheet.rows()}  # type: ignore[arg-type]
    stored = stored_prices(ch, sheet.version)
    if stored == wanted:
        return 0
    if stored:
        raise PriceSheetError(sheet.source or sheet.version,
                              f"version {sheet.version!r} is already in ClickHouse with other prices; "
                              "give the changed sheet a new version")
    rows = [[sheet.version, name, device, usd, ts] for name, device, usd, ts in sorted(wanted)]
    return ch.insert("prices", rows, _PRICE_COLUMNS, tag="prices:sync")


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)
