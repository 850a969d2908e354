"""Effective-dated price sheets and the seed's formula: C = compute + storage + people + ops.

Money is Decimal end to end; quantities stay floats/ints as measured. `price_quantities`
is the one formula: scored batches, the sink's ClickHouse writes, idle/shared intervals and
the re-pricing SQL (streams/costs/repricing.py) all price the same quantities the same way.

People and ops are priced per staffed worker-second (`staffed_seconds`), which only the
`shared` rows carry (a worker's whole interval): they are the service's shared cost, spread
over tenants and versions when a report allocates it, never part of a batch's workload.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from reckon.streams.core.errors import PriceSheetError

DEFAULT_SHEET = Path(__file__).with_name("prices.toml")
ENV_OVERRIDDEN = "+env."       # in a sheet's version: RECKON_PRICE_* overrode some of its prices
SCALAR_PRICES = ("vcpu_hour", "gb_ram_hour", "state_gb_month", "kafka_gb_in", "kafka_gb_out",
                 "clickhouse_gb_month", "people_hour", "ops_hour")
HOURS_PER_MONTH = Decimal(730)
GB = Decimal(10**9)
_Q = Decimal("0.000000000001")  # Decimal64(12) in ClickHouse
# `prices.usd` is Decimal(18, 12): six integer digits, so a price must stay below this.
MAX_PRICE = Decimal(10**6)
# A price sheet is a few hundred bytes; the cap keeps /dev/zero or a wrong path from being
# read until memory runs out.
MAX_SHEET_BYTES = 1 << 20


@dataclass(frozen=True)
class Prices:
    """One effective-dated block of unit prices."""

    effective_from: datetime
    unit: dict[str, Decimal]
    gpu_hour: dict[str, Decimal]

    def gpu_hour_for(self, device: str) -> Decimal:
        """GPU hour price for a device name; longest matching key first (the SQL does the same)."""
        if not device.startswith("cuda"):
            return Decimal(0)
        name = device.lower()
        for key in gpu_key_order(self.gpu_hour):
            if key != "default" and key in name:
                return self.gpu_hour[key]
        return self.gpu_hour.get("default", Decimal(0))


def gpu_key_order(keys: "dict[str, Decimal] | list[str]") -> list[str]:
    return sorted(keys, key=lambda k: (-len(k), k))


@dataclass(frozen=True)
class Usage:
    """What a scored batch used, as measured."""

    wall_seconds: float
    device_seconds: float = 0.0
    cpu_seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    state_bytes: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class Quantities:
    """What one cost row is priced from: exactly the quantity columns of `cost_events`."""

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    device_seconds: float = 0.0
    ram_gb_seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    state_bytes: int = 0
    clickhouse_bytes: int = 0
    staffed_seconds: float = 0.0  # worker-seconds people and ops are charged for (shared rows only)
    device: str = "cpu"


@dataclass(frozen=True)
class Cost:
    compute: Decimal
    storage: Decimal
    people: Decimal
    ops: Decimal

    @property
    def total(self) -> Decimal:
        return self.compute + self.storage + self.people + self.ops

    def wire(self) -> dict[str, str]:
        """The cost as a cost event carries it: decimal strings, never floats."""
        return {"compute": str(self.compute), "storage": str(self.storage), "people": str(self.people),
                "ops": str(self.ops), "total": str(self.total)}


@dataclass(frozen=True)
class PriceSheet:
    version: str
    blocks: tuple[Prices, ...]  # sorted by effective_from
    source: str = field(default="", compare=False)

    @classmethod
    def load(cls, path: Path | None = None, env: dict[str, str] | None = None) -> "PriceSheet":
        path = path or DEFAULT_SHEET
        try:
            raw = tomllib.loads(_read_sheet(Path(path)))
        except FileNotFoundError:
            raise PriceSheetError(str(path), "file not found") from None
        except UnicodeDecodeError:
            raise PriceSheetError(str(path), "not UTF-8 text") from None
        except OSError as exc:      # unreadable (permissions, I/O): say so in one line
            raise PriceSheetError(str(path), exc.strerror or str(exc)) from None
        except tomllib.TOMLDecodeError as exc:
            raise PriceSheetError(str(path), f"not valid TOML: {exc}") from None
        return cls.from_dict(raw, str(path), os.environ if env is None else env)

    @classmethod
    def from_dict(cls, raw: dict, source: str, env: dict[str, str] | None = None) -> "PriceSheet":
        errors: list[str] = []
        version = raw.get("version")
        if not isinstance(version, str) or not version:
            errors.append("'version' must be a non-empty string")
        if raw.get("currency", "USD") != "USD":
            errors.append(f"currency {raw.get('currency')!r} is not supported (costs are kept in USD)")
        unknown = set(raw) - {"version", "currency", "prices"}
        if unknown:
            errors.append(f"unknown top-level keys {sorted(unknown)}")
        listed = raw.get("prices") or []
        if not isinstance(listed, list):
            errors.append("'prices' must be an array of tables ([[prices]])")
            listed = []
        blocks = []
        for i, block in enumerate(listed):
            if not isinstance(block, dict):
                errors.append(f"prices[{i}] must be a table")
                continue
            blocks.append(_parse_block(block, f"prices[{i}]", errors))
        if not blocks:
            errors.append("needs at least one [[prices]] block")
        blocks.sort(key=lambda b: b.effective_from)
        starts = [b.effective_from for b in blocks]
        if len(set(starts)) != len(starts):
            errors.append("two [[prices]] blocks share an effective_from")
        if errors:
            raise PriceSheetError(source, "; ".join(errors))
        sheet = cls(str(version), tuple(blocks), source)
        return sheet.with_overrides(env or {})

    def with_overrides(self, env: dict[str, str]) -> "PriceSheet":
        """RECKON_PRICE_<NAME> overrides a scalar price of the latest block."""
        known = {f"RECKON_PRICE_{name.upper()}" for name in SCALAR_PRICES} | {"RECKON_PRICE_SHEET"}
        unknown = sorted(name for name in env if name.startswith("RECKON_PRICE_") and name not in known)
        if unknown:     # a typo would leave the shipped price in force without a word
            raise PriceSheetError(unknown[0], "no such price; overridable: "
                                  + ", ".join(f"RECKON_PRICE_{n.upper()}" for n in SCALAR_PRICES))
        latest = self.blocks[-1]
        unit = dict(latest.unit)
        changed = False
        for name in SCALAR_PRICES:
            value = env.get(f"RECKON_PRICE_{name.upper()}")
            if value is not None:
                unit[name] = _money(value, f"RECKON_PRICE_{name.upper()}", self.source)
                changed = True
        if not changed:
            return self
        block = Prices(latest.effective_from, unit, latest.gpu_hour)
        # The version names the overridden prices, so two override sets never share a version
        # in the `prices` table (re-pricing by version must be unambiguous).
        digest = hashlib.sha256(repr(sorted(unit.items())).encode()).hexdigest()[:8]
        return PriceSheet(f"{self.version}{ENV_OVERRIDDEN}{digest}", self.blocks[:-1] + (block,), self.source)

    @property
    def overridden(self) -> bool:
        """Whether RECKON_PRICE_* changed prices of the sheet as written (its version says so)."""
        return ENV_OVERRIDDEN in self.version

    def at(self, when: datetime) -> Prices:
        current = self.blocks[0]
        for block in self.blocks:
            if block.effective_from <= when:
                current = block
        return current

    def price(self, usage: Usage, when: datetime, ram_gb: float = 0.0) -> Cost:
        """Cost of a scored batch under the prices in effect at `when` (RAM held for its wall time)."""
        return self.price_quantities(Quantities(
            wall_seconds=usage.wall_seconds, cpu_seconds=usage.cpu_seconds,
            device_seconds=usage.device_seconds, ram_gb_seconds=ram_gb * usage.wall_seconds,
            bytes_in=usage.bytes_in, bytes_out=usage.bytes_out, state_bytes=usage.state_bytes,
            device=usage.device), when)

    def price_quantities(self, q: Quantities, when: datetime) -> Cost:
        """The seed's formula, each component a sum of unit price x quantity, rounded to Decimal64(12)."""
        block = self.at(when)
        p = block.unit
        hours = _dec(q.wall_seconds) / 3600
        compute = (_dec(q.cpu_seconds) * p["vcpu_hour"]
                   + _dec(q.device_seconds) * block.gpu_hour_for(q.device)
                   + _dec(q.ram_gb_seconds) * p["gb_ram_hour"]) / 3600
        storage = (Decimal(q.state_bytes) / GB * p["state_gb_month"] * hours / HOURS_PER_MONTH
                   + Decimal(q.bytes_in) / GB * p["kafka_gb_in"]
                   + Decimal(q.bytes_out) / GB * p["kafka_gb_out"]
                   + Decimal(q.clickhouse_bytes) / GB * p["clickhouse_gb_month"])
        staffed = _dec(q.staffed_seconds) / 3600
        people = staffed * p["people_hour"]
        ops = staffed * p["ops_hour"]
        return Cost(compute=compute.quantize(_Q), storage=storage.quantize(_Q),
                    people=people.quantize(_Q), ops=ops.quantize(_Q))

    def rows(self) -> list[list[object]]:
        """The sheet as rows for ClickHouse's `prices` table (name, device, usd, effective_from)."""
        out: list[list[object]] = []
        for block in self.blocks:
            for name, usd in block.unit.items():
                out.append([self.version, name, "", usd, block.effective_from])
            for device, usd in block.gpu_hour.items():
                out.append([self.version, "gpu_hour", device, usd, block.effective_from])
        return out


def _dec(value: float) -> Decimal:
    # repr() is the shortest string that round-trips the float: no binary noise in the money.
    return Decimal(repr(float(value)))


def _parse_block(block: dict, where: str, errors: list[str]) -> Prices:
    start = block.get("effective_from")
    try:
        when = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    except ValueError:
        errors.append(f"{where}.effective_from {start!r} is not an ISO-8601 time")
        when = datetime.min.replace(tzinfo=timezone.utc)
    unit: dict[str, Decimal] = {}
    for name in SCALAR_PRICES:
        if name not in block:
            errors.append(f"{where}.{name} is missing")
            continue
        try:
            unit[name] = _money(block[name], f"{where}.{name}", "")
        except PriceSheetError as exc:
            errors.append(str(exc).removeprefix("price sheet : "))
    unknown = set(block) - set(SCALAR_PRICES) - {"effective_from", "gpu_hour"}
    if unknown:
        errors.append(f"{where} has unknown prices {sorted(unknown)}")
    gpu: dict[str, Decimal] = {}
    table = block.get("gpu_hour") or {}
    if not isinstance(table, dict):
        errors.append(f"{where}.gpu_hour must be a table of device type = price")
        table = {}
    for device, value in table.items():
        try:
            gpu[device.lower()] = _money(value, f"{where}.gpu_hour.{device}", "")
        except PriceSheetError as exc:
            errors.append(str(exc).removeprefix("price sheet : "))
    return Prices(when, unit, gpu)


def _read_sheet(path: Path) -> str:
    """The sheet's text, once its stat says it is a regular file of a sane size (a directory,
    a device or a FIFO would fail obscurely or be read without end)."""
    mode = path.stat()
    if not stat.S_ISREG(mode.st_mode):
        raise PriceSheetError(str(path), "is not a file")
    if mode.st_size > MAX_SHEET_BYTES:
        raise PriceSheetError(str(path), f"is {mode.st_size} bytes; a price sheet is at most {MAX_SHEET_BYTES}")
    with path.open("rb") as fh:
        data = fh.read(MAX_SHEET_BYTES + 1)   # the file may have grown since the stat
    if len(data) > MAX_SHEET_BYTES:
        raise PriceSheetError(str(path), f"is over {MAX_SHEET_BYTES} bytes; a price sheet is at most that")
    return data.decode("utf-8")


def _money(value: object, name: str, source: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise PriceSheetError(source, f"{name} = {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise PriceSheetError(source, f"{name} = {value!r} must be a finite number >= 0")
    if amount >= MAX_PRICE:     # ClickHouse would refuse the row later, mid-write
        raise PriceSheetError(source, f"{name} = {value!r} must be below {MAX_PRICE} "
                                      "(prices are stored as Decimal(18, 12))")
    return amount
