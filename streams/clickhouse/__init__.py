"""ClickHouse: one client wrapper for chdb and a server (tagged queries, bound values,
retry only what is retryable, one owner per embedded store) and the numbered migrations.

May import: `streams.core`.
"""
