"""Money in `--json`: decimal strings at 12 places under every `_usd` key, whatever a manifest holds."""

from __future__ import annotations

from reckon.models.core.money import usd, usd_strings


def test_every_usd_number_becomes_a_twelve_place_decimal_string() -> None:
    manifest = {"cost": {"device_hour_usd": 0.0624, "int8": {"cost_per_1k_scores_usd": 7.087163986735984e-07,
                                                            "device_seconds_per_1k_scores": 0.034}},
                "training_cost": {"cost_usd": "0.000176838411", "wall_seconds": 10.2},
                "versions": [{"budget_usd": 2}], "flag_usd": True, "none_usd": None}
    assert usd_strings(manifest) == {
        "cost": {"device_hour_usd": "0.062400000000", "int8": {"cost_per_1k_scores_usd": "0.000000708716",
                                                               "device_seconds_per_1k_scores": 0.034}},
        "training_cost": {"cost_usd": "0.000176838411", "wall_seconds": 10.2},   # already a string; not money
        "versions": [{"budget_usd": "2.000000000000"}], "flag_usd": True, "none_usd": None}


def test_a_hostile_manifest_number_does_not_break_the_listing() -> None:
    out = usd_strings({"a_usd": 1e308, "b_usd": float("nan"), "c_usd": float("inf"), "d_usd": 10 ** 4000})
    assert out["a_usd"].startswith("1") and out["a_usd"].endswith(".000000000000") and len(out["a_usd"]) == 322
    assert out["b_usd"] is None and out["c_usd"] is None
    assert out["d_usd"] == str(10 ** 4000) + ".000000000000" and usd(10 ** 4000).startswith("$10,000,")
    assert usd(out["a_usd"]).startswith("$1") and usd(1e308).startswith("$1")   # it was InvalidOperation
    assert usd(float("nan")) == usd(float("inf")) == usd("-Infinity") == "-"
    assert usd(7.087e-07) == "$0.000000709" and usd(1234.567) == "$1,234.57"
