"""Traffic into Kafka: the synthetic event generator and replay of generated traffic,
JSONL event files and session files.

May import: `streams.core`.
"""
