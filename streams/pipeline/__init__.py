"""The event path, free of Faust: event contracts and validation, per-user state (a table of rows,
folded a batch at a time, and its cache),
candidate generation, cold start for items the served version never saw, model routing
(A/B, hot swap), and the batch processor that turns one micro-batch of records into
state, recommendations, dead letters and a cost event.

May import: `streams.costs`, `streams.core`, `reckon.models`.
"""
