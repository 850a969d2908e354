"""The short form of `reckon chaos --scenario clickhouse` (bench/faults.py), on a real worker:
its embedded ClickHouse store goes read-only mid-replay (the engine's real inserts fail),
then writable again; nothing lost, nothing doubled, every cost event stored once."""

from __future__ import annotations

import pytest

from reckon.bench import faults

pytestmark = pytest.mark.integration


def test_clickhouse_read_only_mid_replay_then_back(registry_dir, tmp_path) -> None:
    reason = faults.read_only_unsupported(tmp_path)
    if reason:   # a read-only remount needs CAP_SYS_ADMIN (root on the project's machines)
        pytest.skip(reason)
    result = faults.clickhouse_outage(registry_dir, tmp_path, events=800, down_s=3)
    assert result["sink_failed_writes"] >= 1, result               # the real insert failed
    assert result["users_unanswered"] == 0 and result["redelivered"] == 0, result
    assert result["answered_events"] == result["events_sent"] - result["dead_letters"], result
    assert result["cost_rows"] == result["cost_rows_distinct"] == result["cost_rows_expected"], result
    assert result["cost_events_missing"] == result["cost_events_unknown"] == 0, result
    assert result["ok"], result
