"""Kafka -> ClickHouse, exactly once: rows from cost events, recommendations and clicks,
the consumer that commits offsets only after an insert succeeded, and the ClickHouse bytes
and rows each flush wrote, priced as cost rows.

May import: `streams.pipeline` (the event contracts), `streams.costs` (prices),
`streams.clickhouse`, `streams.core`.
"""
