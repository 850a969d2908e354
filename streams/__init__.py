"""Reckon's event path and cost accounting.

Layers, each importing only those below it (README "Layout" draws them)::

    cli        reckon: the command line, `reckon costs`, `reckon demo`
    worker     the Faust app, accounting in the worker, metrics, process start-up
    reports    the cost report: SQL, build, text and HTML
    sink       Kafka -> ClickHouse rows, exactly once
    pipeline   contracts, user state, candidates, model routing, the batch processor
    costs      prices, meter, idle/shared, re-pricing, alerts
    clickhouse the client wrapper and migrations
    kafka      broker, transport, record batches, user store, local state, watchdog
    traffic    generated traffic and replay
    core       errors and settings
"""
