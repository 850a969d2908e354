"""The cost report and online quality per model version and A/B arm: their SQL (pure
functions returning (sql, params)), the allocation of idle and shared cost, the report built
from ClickHouse, and its text and HTML renderings.

May import: `streams.costs`, `streams.clickhouse`, `streams.core`, `models.core` (money's format).
"""
