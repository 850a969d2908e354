"""Measured scoring cost: device seconds and dollars per 1,000 scores.

A "score" is one history scored against its candidates (100 by default), i.e. one
recommendation request; timings use batches of 256 such requests. Prices are plain
floats per device-hour (``reckon.streams.costs.pricing`` supplies the real price sheet).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["DEVICE_HOUR_USD", "cost_per_1k", "time_scoring"]

# The default price sheet's (streams/costs/prices.toml, which this layer does not read; a test
# holds them equal): 2 vCPU x vcpu_hour, and gpu_hour's default (a named GPU, e.g. an H200,
# has its own price there: --device-hour-usd gives it).
DEVICE_HOUR_USD = {"cpu": 0.0624, "cuda": 2.50}


def cost_per_1k(device_seconds_per_1k: float, device_hour_usd: float) -> float:
    return device_seconds_per_1k / 3600.0 * device_hour_usd


def time_scoring(
    score: Callable[[np.ndarray, np.ndarray, np.ndarray | None], Any],
    num_items: int,
    max_len: int,
    batch: int = 256,
    candidates: int = 100,
    seconds: float = 1.0,
    query_buckets: int = 0,
    query_terms: int = 8,
    warmup: int = 2,
) -> dict[str, float]:
    """Time ``score(history, candidates, query_terms)`` on random inputs, after warm-up
    calls (allocations, kernel selection), for at least ``seconds`` and 3 calls."""
    rng = np.random.default_rng(0)
    hist = rng.integers(1, num_items + 1, size=(batch, max_len), dtype=np.int64)
    cand = rng.integers(1, num_items + 1, size=(batch, candidates), dtype=np.int64)
    terms = rng.integers(0, query_buckets + 1, size=(batch, query_terms), dtype=np.int64) if query_buckets else None
    for _ in range(warmup):
        score(hist, cand, terms)
    times: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 3:
        t = time.perf_counter()
        score(hist, cand, terms)
        times.append(time.perf_counter() - t)
    per_call = float(np.mean(times))
    return {
        "seconds_per_call": per_call,
        "p50_ms": 1000.0 * float(np.percentile(times, 50)),
        "p99_ms": 1000.0 * float(np.percentile(times, 99)),
        "scores_per_second": batch / per_call,
        "device_seconds_per_1k_scores": per_call / batch * 1000.0,
        "batch": batch,
        "candidates": candidates,
        "calls": len(times),
    }
