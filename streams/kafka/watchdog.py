"""Notice when the broker lost Reckon's data and stop the worker with a clear reason
instead of hanging or silently starting over.

The embedded Tansu broker stores in memory only, so a restart empties it — and clients
re-create missing topics on their next metadata request, so "topic missing" alone is a
race. The reliable sign is a partition whose end offset went *backwards*: a log never
shrinks from the end while the broker keeps its data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from reckon.streams.core.errors import BrokerError

log = logging.getLogger(__name__)


def end_offsets(bootstrap: str, topics: Iterable[str], client_kwargs: dict | None = None) -> dict[tuple[str, int], int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="reckon-watchdog",
                             enable_auto_commit=False, request_timeout_ms=5000, **(client_kwargs or {}))
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


class BrokerWatchdog:
    def __init__(self, bootstrap: str, topics: Iterable[str], client_kwargs: dict | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.client_kwargs = client_kwargs
        self.high: dict[tuple[str, int], int] = {}

    def observe(self, offsets: dict[tuple[str, int], int]) -> None:
        """Raise BrokerError if a known partition vanished or its end offset went backwards."""
        lost = sorted(f"{t}[{p}] {self.high[(t, p)]} -> {offsets.get((t, p), 'gone')}"
                      for (t, p) in self.high
                      if offsets.get((t, p), -1) < self.high[(t, p)])
        if lost:
            raise BrokerError(
                f"the broker at {self.bootstrap} lost its data ({', '.join(lost)}): the embedded "
                "broker keeps everything in memory, so a restart empties it. Events it held "
                "are gone; restart the stack and replay them.")
        for key, value in offsets.items():
            self.high[key] = max(value, self.high.get(key, 0))

    async def check(self) -> None:
        try:
            offsets = await asyncio.to_thread(end_offsets, self.bootstrap, self.topics, self.client_kwargs)
        except Exception as exc:  # unreachable for now: Faust's own reconnects handle that
            log.warning("broker check failed: %s", exc)
            return
        self.observe(offsets)
