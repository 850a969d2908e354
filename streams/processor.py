"""The hot path, free of Faust: one micro-batch of raw records in, everything it causes out.

validate -> dead-letter or deduplicate -> fold into user state -> learn candidates ->
score every triggering event of the batch in one model call per version -> top-K ->
recommendations + one cost event. Faust wiring lives in streams/app.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streams.candidates import SOURCES, CandidateIndex, merge
from streams.contracts import Event, Invalid, parse_event
from streams.costs import BatchMeter, cost_event, group_key, new_groups
from streams.pricing import PriceSheet
from streams.settings import Settings
from streams.state import apply_event, expired, is_duplicate, new_state


@dataclass(frozen=True, slots=True)
class InRecord:
    topic: str
    key: bytes | None
    value: bytes
    timestamp: float          # broker/producer timestamp, unix seconds: latency starts here


@dataclass
class BatchOutput:
    states: dict[str, dict] = field(default_factory=dict)        # user -> new state (one write per key)
    last_record: dict[str, int] = field(default_factory=dict)    # user -> index of its last record
    recommendations: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    cost_event: dict | None = None
    counts: Counter = field(default_factory=Counter)


def dead_letter_headers(record: InRecord, invalid: Invalid) -> list[tuple[str, bytes]]:
    return [("reason", invalid.reason.encode()), ("detail", invalid.detail.encode()),
            ("topic", record.topic.encode())]


class BatchProcessor:
    def __init__(self, settings: Settings, sheet: PriceSheet,
                 scorer_for: Callable[[str], Any], index: CandidateIndex | None = None,
                 ram_gb: float = 2.0) -> None:
        self.settings = settings
        self.sheet = sheet
        self.scorer_for = scorer_for      # user_id -> Scorer (lets A/B routing live elsewhere)
        self.index = index or CandidateIndex()
        self.ram_gb = ram_gb
        self._nearest_cache: dict[str, dict[str, list[int]]] = {}

    def _triggers(self, event: Event, state: dict) -> bool:
        s = self.settings
        if s.trigger == "none" or (s.trigger != "all" and s.trigger.rstrip("s") != event.kind):
            return False
        # Clicks and searches arrive on two topics, so a user's events can interleave out of
        # ts order: without a throttle every event triggers, whatever its ts.
        if not s.trigger_min_interval_s:
            return True
        return event.ts - state["last_rec_ts"] >= s.trigger_min_interval_s

    def process(self, records: Sequence[InRecord], state_get: Callable[[str], dict | None],
                device: str) -> BatchOutput:
        meter = BatchMeter(device=device)
        out = BatchOutput()
        groups = new_groups()
        triggered: list[tuple[Event, float, Any]] = []
        now = time.time()
        for position, record in enumerate(records):
            meter.bytes_in += len(record.value) + len(record.key or b"")
            event = parse_event(record.topic, record.value, now=now,
                                default_tenant=self.settings.default_tenant)
            if isinstance(event, Invalid):
                out.counts[f"invalid:{event.reason}"] += 1
                out.dead_letters.append((record.key, record.value, dead_letter_headers(record, event)))
                continue
            state = out.states.get(event.user_id)
            if state is None:
                state = state_get(event.user_id)
                # An idle user starts over: stale history is worse than none. (The key stays
                # in the store until then; Faust tables have no TTL outside windows.)
                if state is None or expired(state, event.ts, self.settings.user_ttl_s):
                    state = new_state()
            if is_duplicate(state, event.event_id):
                out.counts["duplicate"] += 1
                continue
            out.counts["valid"] += 1
            if event.kind == "click":
                self.index.observe(event, state)
            else:
                self.index.observe_search(event)
            scorer = self.scorer_for(event.user_id)
            groups[group_key(event.tenant, scorer.version, event.kind)].events += 1
            if self._triggers(event, state):
                state["last_rec_ts"] = max(state["last_rec_ts"], event.ts)
                triggered.append((event, record.timestamp, scorer))
            out.states[event.user_id] = apply_event(state, event)
            out.last_record[event.user_id] = position
        if triggered:
            self._score(triggered, out, meter, groups)
        if out.counts["valid"]:
            state_bytes = sum(len(json.dumps(s)) for s in out.states.values())
            out.cost_event = cost_event(f"b-{uuid.uuid4().hex}", meter.usage(state_bytes), groups,
                                        self.sheet, self.settings.worker_name, self.ram_gb)
        return out

    def _score(self, triggered: list[tuple[Event, float, Any]], out: BatchOutput,
               meter: BatchMeter, groups: dict) -> None:
        by_scorer: dict[int, list[tuple[Event, float, Any]]] = {}
        for item in triggered:
            by_scorer.setdefault(id(item[2]), []).append(item)
        for batch in by_scorer.values():
            scorer = batch[0][2]
            histories, candidates, terms = self._inputs(batch, out, scorer)
            started = time.perf_counter()
            scores = scorer.score(histories, candidates, terms)
            meter.device_seconds += time.perf_counter() - started
            scores = np.where(candidates > 0, scores, -np.inf)
            k = min(self.settings.top_k, scores.shape[1])
            top = np.argsort(-scores, axis=1)[:, :k]
            for row, (event, produced_at, _) in enumerate(batch):
                picks = [int(c) for c in top[row] if candidates[row, c] > 0]
                items = scorer.item_ids(candidates[row, picks])
                latency_ms = (time.time() - produced_at) * 1000.0
                rec = {"user_id": event.user_id,
                       "items": items,
                       "scores": [round(float(scores[row, c]), 5) for c in picks],
                       "model_version": scorer.version, "trigger_event_id": event.event_id,
                       "trigger_ts": event.ts,  # event time: click attribution windows start here
                       "latency_ms": round(latency_ms, 3), "ts": time.time(), "tenant": event.tenant}
                value = json.dumps(rec).encode()
                meter.bytes_out += len(value)
                out.recommendations.append((event.user_id.encode(), value))
                group = groups[group_key(event.tenant, scorer.version, event.kind)]
                group.recommendations += 1
                group.latencies_ms.append(round(latency_ms, 3))
        out.counts["recommendations"] += len(triggered)

    def _nearest(self, scorer: Any, items: set[str], n: int = 10) -> dict[str, list[int]]:
        """The model's nearest items (as indices) to every item in the batch: one call for
        the items not cached yet. Embeddings are fixed per version, so the cache is too."""
        cache = self._nearest_cache.setdefault(scorer.version, {})
        if len(cache) > 200_000:
            cache.clear()
        missing = [(item, scorer.item_index(item)) for item in items if item not in cache]
        missing = [(item, i) for item, i in missing if i > 0]
        if missing:
            near = scorer.nearest_items(np.array([i for _, i in missing], dtype=np.int64), n)
            cache.update((item, row.tolist()) for (item, _), row in zip(missing, near))
        return cache

    def _inputs(self, batch: list[tuple[Event, float, Any]], out: BatchOutput, scorer: Any
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        n = self.settings.candidates
        t = scorer.max_len
        index = scorer.item_index
        histories = np.zeros((len(batch), t), dtype=np.int64)
        candidates = np.zeros((len(batch), n), dtype=np.int64)
        terms = np.zeros((len(batch), 8), dtype=np.int64)
        states = [out.states[event.user_id] for event, _, _ in batch]
        self.index.begin_batch()
        memo: dict[tuple[str, str], list[int]] = {}

        def ranked(source: str, key: str) -> list[int]:
            found = memo.get((source, key))
            if found is None:
                found = memo[(source, key)] = list(map(index, self.index.ranked(source, key)))
            return found

        nearest = self._nearest(scorer, {i for s in states for i in s["items"][-2:]})
        trending = list(map(index, self.index.trending_top(n)))
        catalog = range(1, min(n, scorer.num_items) + 1)
        codes: Counter = Counter()
        for row, state in enumerate(states):
            idx = [i for i in map(index, state["items"][-t:]) if i > 0]
            if idx:
                histories[row, t - len(idx):] = idx
            q = scorer.query_term_ids(state["terms"][-8:])[:8]
            terms[row, : len(q)] = q
            recent = state["items"][-5:][::-1]
            parts = [
                (_chain(ranked("covisit", i) for i in recent)[: n // 2], 0),
                (_chain(ranked("query", w) for w in state["terms"][-3:])[: n // 4], 1),
                (_chain(nearest.get(i, ()) for i in recent[:2])[: n // 4], 2),
                (trending, 3),
                (catalog, 4),
            ]
            items, sources = merge(parts, map(index, state["bought"]), n)
            candidates[row, : len(items)] = items
            codes.update(sources)
        for code, count in codes.items():
            out.counts[f"candidate:{SOURCES[code]}"] += count
        return histories, candidates, terms


def _chain(lists: Iterable[Sequence[int]]) -> list[int]:
    return [i for part in lists for i in part]


