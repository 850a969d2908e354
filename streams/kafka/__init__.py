"""Kafka plumbing: the embedded Tansu broker, Faust's transport with Reckon's batch path,
whole record batches out, the user-state store (RocksDB + changelog, written a commit at a time),
local state recovery after an unclean stop, and the watchdog that notices a broker that
lost its data.

May import: `streams.core`.
"""
