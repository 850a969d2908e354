"""Kafka -> ClickHouse, exactly once: rows from cost events, recommendations and clicks,
and the consumer that commits offsets only after an insert succeeded.

May import: `streams.pipeline` (the event contracts), `streams.clickhouse`, `streams.core`.
"""
