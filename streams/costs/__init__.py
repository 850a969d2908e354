"""Cost accounting, free of Faust: effective-dated price sheets, the per-batch meter and
its allocation, idle and shared cost per interval, re-pricing stored history, and cost
alerts (pure detectors and the engine that runs them over the rollups).

May import: `streams.clickhouse`, `streams.core`.
"""
