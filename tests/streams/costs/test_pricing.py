"""Price sheets: validation with clear errors, effective dating, the one pricing formula."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from reckon.streams.core.errors import PriceSheetError
from reckon.streams.costs.pricing import PriceSheet, Quantities, Usage

BLOCK = {"vcpu_hour": 0.04, "gb_ram_hour": 0.005, "state_gb_month": 0.10, "kafka_gb_in": 0.01,
         "kafka_gb_out": 0.02, "clickhouse_gb_month": 0.05, "people_hour": 1.5, "ops_hour": 0.2,
         "gpu_hour": {"h100": 4.0, "a100": 2.0, "default": 1.0}}


def sheet(*blocks: dict, version: str = "t1") -> PriceSheet:
    return PriceSheet.from_dict({"version": version, "prices": list(blocks)}, "test", env={})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_default_sheet_loads() -> None:
    default = PriceSheet.load(env={})
    assert default.version == "2026-11-default"
    assert default.at(at("2026-11-23T00:00:00")).unit["vcpu_hour"] == Decimal("0.0312")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('version = ""\ncurrency = "EUR"\nextra = 1\n[[prices]]\neffective_from = "soon"\n'
                   'vcpu_hour = -1\ngb_ram_hour = "x"\nbogus_hour = 3\n')
    with pytest.raises(PriceSheetError) as err:
        PriceSheet.load(bad, env={})
    text = str(err.value)
    assert str(bad) in text
    for fragment in ("'version' must be a non-empty string", "currency 'EUR'", "unknown top-level keys ['extra']",
                     "prices[0].effective_from 'soon'", "prices[0].vcpu_hour = -1 must be a finite number >= 0",
                     "prices[0].gb_ram_hour = 'x' is not a number", "prices[0].state_gb_month is missing",
                     "prices[0] has unknown prices ['bogus_hour']"):
        assert fragment in text, fragment


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(PriceSheetError, match="file not found"):
        PriceSheet.load(tmp_path / "none.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("version = \n")
    with pytest.raises(PriceSheetError, match="not valid TOML"):
        PriceSheet.load(broken, env={})


def test_a_sheet_that_is_not_a_small_utf8_file_is_one_error(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'version = "caf\xe9"\n')
    with pytest.raises(PriceSheetError, match=f"^price sheet {latin1}: not UTF-8 text$"):
        PriceSheet.load(latin1, env={})
    with pytest.raises(PriceSheetError, match=f"^price sheet {tmp_path}: is not a file$"):
        PriceSheet.load(tmp_path, env={})
    with pytest.raises(PriceSheetError, match="^price sheet /dev/zero: is not a file$"):
        PriceSheet.load(Path("/dev/zero"), env={})      # read without a limit before
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (2 << 20))
    with pytest.raises(PriceSheetError, match="a price sheet is at most 1048576"):
        PriceSheet.load(huge, env={})


def test_a_price_clickhouse_cannot_store_is_refused() -> None:
    # prices.usd is Decimal(18, 12): 1e6 and above fail inside the ClickHouse client otherwise.
    with pytest.raises(PriceSheetError, match=r"prices\[0\]\.vcpu_hour = 1e\+300 must be below 1000000"):
        sheet({**BLOCK, "effective_from": "2026-01-01T00:00:00Z", "vcpu_hour": 1e300})
    with pytest.raises(PriceSheetError, match=r"prices\[0\]\.gpu_hour\.h100 = 1000000\.0 must be below"):
        sheet({**BLOCK, "effective_from": "2026-01-01T00:00:00Z", "gpu_hour": {"h100": 1e6}})
    base = sheet({**BLOCK, "effective_from": "2026-01-01T00:00:00Z"})
    with pytest.raises(PriceSheetError, match="RECKON_PRICE_VCPU_HOUR = '1e7' must be below 1000000"):
        base.with_overrides({"RECKON_PRICE_VCPU_HOUR": "1e7"})
    assert base.with_overrides({"RECKON_PRICE_VCPU_HOUR": "999999.999999999999"}).blocks[-1].unit["vcpu_hour"] \
        == Decimal("999999.999999999999")


def test_duplicate_effective_from_is_an_error() -> None:
    block = {**BLOCK, "effective_from": "2026-01-01T00:00:00Z"}
    with pytest.raises(PriceSheetError, match="share an effective_from"):
        sheet(block, dict(block))


def test_effective_dating_picks_the_block_in_force() -> None:
    s = sheet({**BLOCK, "effective_from": "2026-06-01T00:00:00Z", "vcpu_hour": 0.05},
              {**BLOCK, "effective_from": "2026-01-01T00:00:00Z"})
    assert s.at(at("2025-12-31T00:00:00")).unit["vcpu_hour"] == Decimal("0.04")   # before all: the first
    assert s.at(at("2026-05-31T23:59:59")).unit["vcpu_hour"] == Decimal("0.04")
    assert s.at(at("2026-06-01T00:00:00")).unit["vcpu_hour"] == Decimal("0.05")


def test_env_override_names_a_new_version() -> None:
    base = sheet({**BLOCK, "effective_from": "2026-01-01T00:00:00Z"})
    one = base.with_overrides({"RECKON_PRICE_VCPU_HOUR": "0.06"})
    two = base.with_overrides({"RECKON_PRICE_VCPU_HOUR": "0.07"})
    assert one.blocks[-1].unit["vcpu_hour"] == Decimal("0.06")
    assert one.version.startswith("t1+env.") and one.version != two.version
    assert base.with_overrides({}) is base
    with pytest.raises(PriceSheetError, match="RECKON_PRICE_OPS_HOUR"):
        base.with_overrides({"RECKON_PRICE_OPS_HOUR": "-2"})
    with pytest.raises(PriceSheetError, match=r"^price sheet RECKON_PRICE_VCPU_HOURS: no such price; overridable: "
                                              r"RECKON_PRICE_VCPU_HOUR, "):
        base.with_overrides({"RECKON_PRICE_VCPU_HOURS": "0.05"})          # a typo left the shipped price in force
    assert base.with_overrides({"RECKON_PRICE_SHEET": "/etc/prices.toml"}) == base


def test_gpu_price_by_device_type() -> None:
    prices = sheet({**BLOCK, "effective_from": "2026-01-01T00:00:00Z"}).blocks[0]
    assert prices.gpu_hour_for("cuda:0 NVIDIA H100 80GB") == Decimal("4.0")
    assert prices.gpu_hour_for("cuda:0 NVIDIA A100") == Decimal("2.0")
    assert prices.gpu_hour_for("cuda") == Decimal("1.0")          # unknown type: the default
    assert prices.gpu_hour_for("cpu") == Decimal(0)


def test_the_formula_by_hand() -> None:
    s = sheet({**BLOCK, "effective_from": "2026-01-01T00:00:00Z"})
    q = Quantities(wall_seconds=36.0, cpu_seconds=72.0, device_seconds=18.0, ram_gb_seconds=72.0,
                   bytes_in=2_000_000_000, bytes_out=1_000_000_000, state_bytes=730_000_000_000,
                   clickhouse_bytes=3_000_000_000, staffed_seconds=36.0, device="cuda:0 h100")
    cost = s.price_quantities(q, at("2026-03-01T00:00:00"))
    # compute: 72 s x 0.04/h + 18 s x 4.0/h + 72 GB-s x 0.005/h
    assert cost.compute == Decimal("0.0008") + Decimal("0.02") + Decimal("0.0001")
    # storage: 730 GB for 0.01 h of a 730 h month x 0.10 + 2 GB x 0.01 + 1 GB x 0.02 + 3 GB x 0.05
    assert cost.storage == Decimal("0.001") + Decimal("0.02") + Decimal("0.02") + Decimal("0.15")
    # people and ops: 36 staffed seconds x 1.5/h and x 0.2/h
    assert (cost.people, cost.ops) == (Decimal("0.015"), Decimal("0.002"))
    unstaffed = s.price_quantities(Quantities(wall_seconds=36.0, cpu_seconds=36.0), at("2026-03-01T00:00:00"))
    assert (unstaffed.compute, unstaffed.people, unstaffed.ops) == (Decimal("0.0004"), Decimal(0), Decimal(0))


def test_a_batch_carries_no_people_or_ops() -> None:
    """People and ops are shared cost (interval rows), never part of a batch's workload."""
    s = sheet({**BLOCK, "effective_from": "2026-01-01T00:00:00Z"})
    cost = s.price(Usage(wall_seconds=3600.0, cpu_seconds=1.0), at("2026-03-01T00:00:00"), ram_gb=2.0)
    assert (cost.people, cost.ops) == (Decimal(0), Decimal(0)) and cost.compute > 0


def test_batch_price_holds_ram_for_its_wall_time() -> None:
    s = sheet({**BLOCK, "effective_from": "2026-01-01T00:00:00Z"})
    usage = Usage(wall_seconds=3.6, cpu_seconds=0.0)
    assert s.price(usage, at("2026-03-01T00:00:00"), ram_gb=2.0).compute == Decimal("0.00001")


def test_rows_mirror_every_price() -> None:
    s = sheet({**BLOCK, "effective_from": "2026-01-01T00:00:00Z"},
              {**BLOCK, "effective_from": "2026-06-01T00:00:00Z"})
    rows = s.rows()
    assert len(rows) == 2 * (8 + 3)
    assert ["t1", "gpu_hour", "h100", Decimal("4.0"), at("2026-06-01T00:00:00")] in rows


def test_the_models_default_device_prices_are_the_default_price_sheets() -> None:
    # A version's cost per 1k scores (models/serving/costing.py, which cannot read the sheet)
    # and a worker's cost rows price the same device the same: CUDA was $4.00/h against the
    # sheet's $2.50.
    from datetime import datetime, timezone
    from decimal import Decimal

    from reckon.models.serving.costing import DEVICE_HOUR_USD

    prices = PriceSheet.load(env={}).at(datetime.now(timezone.utc))
    assert Decimal(repr(DEVICE_HOUR_USD["cpu"])) == 2 * prices.unit["vcpu_hour"]
    assert Decimal(repr(DEVICE_HOUR_USD["cuda"])) == prices.gpu_hour_for("cuda:some gpu")
