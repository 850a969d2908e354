"""The cost report: its SQL (pure functions returning (sql, params)), the report built
from ClickHouse, and its text and HTML renderings.

May import: `streams.costs`, `streams.clickhouse`, `streams.core`.
"""
