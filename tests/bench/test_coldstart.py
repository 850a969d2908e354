"""The short form of `reckon bench coldstart`: on drifted traffic, cold start is what lets the
served version rank the drift's new items at all, and its estimate is what ranks them well."""

from __future__ import annotations

from reckon.bench.coldstart import drifted_records, hit_rates


def test_new_item_hit_rate_off_uninformed_served(registry_dir) -> None:
    records = drifted_records(5000, 1500)
    off, uninformed, served = (hit_rates(registry_dir, records, arm, batch=10)
                               for arm in ("off", "uninformed", "served"))
    assert off["new_clicks"] == served["new_clicks"] > 50                  # the same clicks judged
    assert off["new_hits"] == 0 and off["estimated_items"] == 0            # unknown items are never candidates
    assert served["estimated_items"] > 0 and served["new_item_hit_rate"] > 0.05, served
    assert served["new_hits"] > 2 * uninformed["new_hits"], (served, uninformed)
