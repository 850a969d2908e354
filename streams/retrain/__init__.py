"""Continuous training: a window of the clicks stored in ClickHouse (or a JSONL file of
events) -> a time split -> a candidate warm-started from the promoted version -> both
judged on the latest slice -> the candidate registered with its training cost (priced by
the price sheet) -> promoted only when better by a margin. Also the schedule that runs it
from the worker that sinks to ClickHouse, in a child process (the worker never imports
torch; training is imported only where a retrain runs).

May import: `streams.pipeline` (the event contract), `streams.costs`, `streams.clickhouse`,
`streams.core`, `models.training`, `models.serving`, `models.core`.
"""
