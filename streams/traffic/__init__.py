"""Traffic into Kafka: the synthetic event generator (optionally drifting: new items and a
popularity shift mid-run) and replay of generated traffic, JSONL event files and session
files.

May import: `streams.core`.
"""
