"""The floor under Reckon's worker: Faust's consumer and Reckon's batch transport with an
empty handler. What it cannot beat, the worker cannot either; the gap between this and a
raw aiokafka loop is the cost of Faust itself (consumer thread, group, offsets).

Run as a child process by bench/rates.py:
    python -m reckon.bench.faust_floor BOOTSTRAP TOPIC N DATADIR MIN_SECONDS
        -> prints {"events_per_s": ..., "seconds": ...}

Like the raw read, it re-reads the backlog (seeking every partition back to its start)
until at least MIN_SECONDS were timed: one pass of a backlog the raw loop reads at
~800k events/s is under a second, too short to hold still between runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import faust

from reckon.streams.kafka.transport import on_batches


def main(bootstrap: str, topic_name: str, n: int, datadir: str, min_seconds: float) -> None:
    app = faust.App(f"bench-floor-{int(time.time())}", broker=f"reckon://{bootstrap}", store="memory://",
                    datadir=datadir, web_enabled=False, consumer_auto_offset_reset="earliest",
                    consumer_max_fetch_size=4 * 1024 * 1024, logging_config=None)
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw")
    seen = {"n": 0, "first": 0.0, "n_first": 0, "last": 0.0, "pass": 0}

    async def count(batch: Any) -> None:
        # Timed as the worker's /stats are: the events after the first batch, over the time
        # from its end to the end of the last one.
        seen["n"] += sum(len(recs) for recs in batch.values())
        if not seen["first"]:
            seen["first"], seen["n_first"] = time.time(), seen["n"]
        seen["last"] = time.time()
        if seen["n"] - seen["pass"] >= n:     # the backlog read once more
            span = seen["last"] - seen["first"]
            if span >= min_seconds:
                rate = (seen["n"] - seen["n_first"]) / span
                print(json.dumps({"events_per_s": rate, "seconds": span}), flush=True)
                os._exit(0)   # a measuring child: nothing to flush or commit
            seen["pass"] = seen["n"]
            # after the batch is acknowledged, which moves the read offsets past it
            asyncio.get_running_loop().create_task(rewind())

    async def rewind() -> None:
        for tp in app.consumer.assignment():
            if tp.topic == topic_name:
                await app.consumer.seek(tp, 0)

    on_batches(app, topic, count, fetch_wait_ms=20, max_records=2000)
    faust.Worker(app, loglevel="ERROR", override_logging=False, quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
