"""The short form of `reckon chaos --scenario poison` (bench/poison.py): hostile events mixed
into normal traffic and hostile messages on the sink's topics, through a live worker and
its sink; the worker stays up and every event and cost event is accounted for."""

from __future__ import annotations

import pytest

from reckon.bench.poison import poison

pytestmark = pytest.mark.integration


def test_poison_mixed_into_traffic_leaves_the_worker_up_and_everything_accounted_for(registry_dir, tmp_path) -> None:
    result = poison(registry_dir, tmp_path, events=600)
    assert result["failed_checks"] == [] and result["ok"], result
    assert result["hostile_classes"] >= 20 and result["dead_lettered"] > 100, result
    stages = {stage for _, stage, _ in result["dead_letters_by_reason_and_stage"]}
    assert stages == {"contract", "sink_rows", "sink_insert"}, result
