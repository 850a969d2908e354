"""Every cost figure Reckon shows, named once: its JSON key, its label, what it means.

The demo, `reckon costs` (text, JSON, HTML), `GET /costs` and the Grafana dashboard use
these keys and labels and nothing else, so a figure means one thing wherever it appears.
README's "What the cost figures mean" is the long form. Money keys end in `_usd` and carry
decimal strings in JSON; unit costs are per 1,000 recommendations.

A recommendation is one published output: a user's events in one batch that share a
scored row are answered by one recommendation (streams/pipeline/processor.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    key: str           # the JSON key, everywhere
    label: str         # how text, HTML and Grafana name it
    meaning: str       # one line: what it counts


WORKLOAD = Figure("workload_cost_usd", "workload cost",
                  "what scored batches measured (CPU and device time of their threads, RAM for their "
                  "wall time, Kafka and state bytes) and the ClickHouse bytes the sink wrote for them")
IDLE = Figure("idle_cost_usd", "idle cost", "reserved capacity (vCPU, RAM, GPU) no batch used")
SHARED = Figure("shared_cost_usd", "shared cost",
                "people and ops for every worker hour, and ClickHouse storage no tenant caused")
PEOPLE = Figure("people_cost_usd", "people", "engineering time per worker hour (price sheet: people_hour)")
OPS = Figure("ops_cost_usd", "ops", "on-call, monitoring and licences per worker hour (price sheet: ops_hour)")
TOTAL = Figure("total_cost_usd", "total cost", "workload + idle + shared: everything the window cost")
ATTRIBUTED = Figure("attributed_cost_usd", "attributed cost",
                    "workload + its share of idle and shared, spread in proportion to workload cost")
UNALLOCATED = Figure("unallocated_cost_usd", "unallocated",
                     "cost no tenant or version carries: idle when kept separate, or a window without traffic")
WORKLOAD_PER_1K = Figure("workload_cost_per_1k_usd", "workload cost per 1k",
                         "workload cost per 1,000 recommendations")
ATTRIBUTED_PER_1K = Figure("attributed_cost_per_1k_usd", "attributed cost per 1k",
                           "attributed cost per 1,000 recommendations")
FULLY_LOADED_PER_1K = Figure("fully_loaded_cost_per_1k_usd", "fully loaded cost per 1k",
                             "workload + a share of all idle and shared (idle included even when kept "
                             "separate) per 1,000 recommendations")
CAPACITY = Figure("capacity_cost_usd", "paid capacity", "reserved compute paid for: idle + what batches used of it")
IDLE_SHARE = Figure("idle_share", "idle share", "idle cost / paid capacity: the share of reserved compute unused")
