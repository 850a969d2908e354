"""Cost accounting, free of Faust: effective-dated price sheets, the per-batch meter and
its allocation, idle and shared cost per interval, re-pricing stored history, cost alerts
(pure detectors and the engine that runs them over the rollups), and the names of every
cost figure shown (figures.py).

May import: `streams.clickhouse`, `streams.core`.
"""
