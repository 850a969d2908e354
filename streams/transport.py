"""Faust's aiokafka transport with the one fetch setting Reckon needs changed.

Faust hard-codes `fetch_max_wait_ms=1500` for its consumer. A broker that does not answer
a long-poll fetch early when data arrives (the embedded Tansu broker, measured) then adds
up to 1.5 s to event-to-recommendation latency. Registered as the `reckon://` broker
scheme (entry point `faust.transports`); everything else is Faust's own transport.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 20


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by aiokafka's Fetcher at start()
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
