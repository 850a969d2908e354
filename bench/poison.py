"""`reckon chaos --scenario poison`: hostile input against a live worker and its cost sink.

Normal generated traffic with a hostile corpus mixed in (bench/hostile.py: every class of
bad field, type, encoding, nesting, size and tenant, redeliveries, and valid events that
look odd), plus hostile messages put straight on the sink's topics (`recommendations`,
`cost-events`), through one `reckon worker` process (scorer and sink) on the embedded
broker, serving tenants acme, globex and default.

Reports what was consumed, valid, duplicate and dead-lettered (by reason and stage, from
the worker's counters and from `events-dlq` itself), recommendations, and cost events
sent vs sunk. Fails if the worker restarted or exited, if any event is unaccounted for
(valid + duplicate + dead-lettered = consumed = sent), if an outcome differs from what
the corpus says it must be, if a user with valid events got no recommendation, or if a
cost event the worker sent was not stored.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path

from reckon.bench.faults import _read_all
from reckon.bench.hostile import HostileCorpus, sink_poison
from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
from reckon.streams.pipeline.contracts import parse_event
from reckon.streams.pipeline.dead_letters import STAGES
from reckon.streams.traffic.generator import Record, TrafficGenerator
from reckon.streams.traffic.replay import produce
from reckon.streams.worker.stack import start_worker

TENANTS = "acme,globex,default"


def _mixed(events: int, now: float) -> tuple[list[Record], Counter, Counter]:
    """Normal traffic with the hostile corpus spread through it; the outcome each must have,
    and the hostile classes sent."""
    normal = list(TrafficGenerator(seed=34).records(events))
    corpus = HostileCorpus(seed=16, now=now)
    hostile = list(corpus.records(max(events // 4, 3 * len(corpus._classes))))
    rng = random.Random(35)
    slots = sorted(rng.sample(range(len(normal) + len(hostile)), len(hostile)))
    mixed, expected, classes = [], Counter(valid=len(normal)), Counter()
    normal_left, hostile_left = iter(normal), iter(hostile)
    slot_set = set(slots)
    for position in range(len(normal) + len(hostile)):
        if position in slot_set:
            h = next(hostile_left)
            mixed.append(Record(h.topic, h.key, h.value, h.expected == "valid", h.expected))
            expected[h.expected] += 1
            classes[h.kind] += 1
        else:
            mixed.append(next(normal_left))
    return mixed, expected, classes


def _settled(stats: dict, consumed: int, sink_dead: int) -> bool:
    dead = sum(v for k, v in stats.items() if k.startswith("sink_dead:"))
    return (stats.get("consumed", 0) >= consumed and dead >= sink_dead
            and stats.get("cost_events_sunk", 0) >= stats.get("cost_events_sent", 0))


def poison(registry: Path, workdir: Path, events: int) -> dict:
    now = time.time()
    mixed, expected, classes = _mixed(events, now)
    to_sink = sink_poison(now=now)
    with EmbeddedBroker(log_path=workdir / "broker-poison.log") as broker:
        create_topics(broker.bootstrap_servers, 4)
        worker = start_worker(broker.bootstrap_servers, registry, workdir / "poison", "w",
                              log_name=f"poison-{time.time():.0f}", RECKON_TENANTS=TENANTS)
        pid = worker.proc.pid
        at_sink = [Record(topic, b"poison", value, False, reason) for topic, value, reason in to_sink]
        asyncio.run(produce(broker.bootstrap_servers, mixed + at_sink))
        deadline = time.monotonic() + 300
        stats: dict = {}
        while time.monotonic() < deadline and worker.proc.poll() is None:
            stats = worker.stats() or stats
            if _settled(stats, len(mixed), len(to_sink)):
                break
            time.sleep(0.5)
        time.sleep(3)                                     # anything still in flight shows up now
        # The worker keeps emitting idle and capacity cost events, so sent runs ahead of sunk for
        # a moment at any instant: wait for a reading where the sink has caught up.
        for _ in range(120):
            stats = worker.stats() or stats
            if worker.proc.poll() is not None or stats.get("cost_events_sunk") == stats.get("cost_events_sent"):
                break
            time.sleep(0.5)
        alive = worker.proc.poll() is None and worker.proc.pid == pid
        worker.stop()
        dlq = asyncio.run(_read_all(broker.bootstrap_servers, "events-dlq"))
        recs = [json.loads(m.value) for m in asyncio.run(_read_all(broker.bootstrap_servers, "recommendations"))]
    return _report(stats, mixed, expected, classes, to_sink, dlq, recs, alive)


def _report(stats: dict, mixed: list[Record], expected: Counter, classes: Counter, to_sink: list,
            dlq: list, recs: list, alive: bool) -> dict:
    reasons = Counter({k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("invalid:")})
    sink_reasons = Counter({k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("sink_dead:")})
    dead = sum(reasons.values())
    headers = [dict(m.headers) for m in dlq]
    on_dlq = Counter((h["reason"].decode(), h["stage"].decode()) for h in headers)
    located = all({"topic", "partition", "offset", "stage"} <= set(h) for h in headers)
    users = set()
    for record in mixed:
        if record.valid:
            event = parse_event(record.topic, record.value, default_tenant="default")
            users.add((event.tenant, event.user_id))
    recommended = {(r["tenant"], r["user_id"]) for r in recs}
    want_reasons = Counter({k: v for k, v in expected.items() if k not in ("valid", "duplicate")})
    want_sink = Counter(reason for _, _, reason in to_sink)
    checks = {
        "worker_never_restarted": alive,
        "all_consumed": stats.get("consumed") == len(mixed),
        "accounted": stats.get("valid", 0) + stats.get("duplicate", 0) + dead == stats.get("consumed"),
        "outcomes_as_expected": (stats.get("valid", 0) == expected["valid"]
                                 and stats.get("duplicate", 0) == expected["duplicate"] and reasons == want_reasons),
        "dead_letters_on_topic": on_dlq == Counter({(r, STAGES[r]): n for r, n in (reasons + sink_reasons).items()}),
        "dead_letters_located": located,
        "every_user_with_valid_events_recommended": users <= recommended,
        "cost_events_sunk_eq_sent": stats.get("cost_events_sunk") == stats.get("cost_events_sent"),
        "sink_poison_dead_lettered": sink_reasons == want_sink,
    }
    return {
        "scenario": "poison", "events_sent": len(mixed), "hostile_sent": sum(classes.values()),
        "hostile_classes": len(classes), "sink_poison_sent": len(to_sink),
        "consumed": stats.get("consumed"), "valid": stats.get("valid", 0), "duplicate": stats.get("duplicate", 0),
        "dead_lettered": dead,
        "dead_letters_by_reason_and_stage": sorted([r, STAGES[r], n] for r, n in (reasons + sink_reasons).items()),
        "recommendations": len(recs), "cost_events_sent": stats.get("cost_events_sent"),
        "cost_events_sunk": stats.get("cost_events_sunk"),
        "cost_events_dead_lettered": stats.get("cost_events_dead_lettered", 0),
        "failed_checks": sorted(name for name, ok in checks.items() if not ok),
        "ok": all(checks.values()),
    }
