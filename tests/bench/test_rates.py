"""The benchmark's read rates hold still only if each is timed over enough work: the raw
read and the Faust floor re-read a backlog smaller than that (bench/rates.py)."""

from __future__ import annotations

import asyncio

import pytest

from reckon.bench.rates import clicks, faust_floor, produce_backlog, raw_read
from reckon.streams.kafka.broker import create_topics

pytestmark = pytest.mark.integration


def test_raw_read_and_faust_floor_reread_a_small_backlog_until_timed_long_enough(broker, tmp_path) -> None:
    topic = "rates-backlog"
    create_topics(broker.bootstrap_servers, 2, topics=(topic,))
    asyncio.run(produce_backlog(broker.bootstrap_servers, topic, clicks(20_000, seed=3, users=500, id_prefix="r")))
    raw = asyncio.run(raw_read(broker.bootstrap_servers, topic, 20_000, min_seconds=1.0))
    floor = faust_floor(broker.bootstrap_servers, topic, 20_000, tmp_path / "floor", min_seconds=1.0)
    # one pass of 20k events takes well under a second on any machine this runs on
    assert floor["seconds"] >= 1.0 and floor["events_per_s"] * floor["seconds"] > 20_000, floor
    assert raw > 0 and floor["events_per_s"] > 0
