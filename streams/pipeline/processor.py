"""The hot path, free of Faust: one micro-batch of raw records in, everything it causes out.

validate -> dead-letter or deduplicate -> fold into user state -> learn candidates ->
score one row per user with a triggering event, in one model call per version -> top-K ->
recommendations + one cost event. Faust wiring lives in streams/worker/app.py.

A recommendation is published (and counted) once per distinct output: a user's triggering
events in one batch all see the same state (the one after the batch), so they share one
scored row and one recommendation. It names the latest of them as its trigger (the state
it reflects; click attribution starts there), says how many it answers (`triggers`), and
its latency runs from the earliest of them (no event's wait is hidden).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from reckon.models.serving.threads import DeviceUsage
from reckon.streams.core.settings import Settings
from reckon.streams.costs.meter import BatchMeter, cost_event, new_groups
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.pipeline.candidates import SOURCES, CandidateIndex, fill_from_shared, first_unique
from reckon.streams.pipeline.coldstart import ColdStart
from reckon.streams.pipeline.contracts import Event, Invalid, parse_batch, query_terms
from reckon.streams.pipeline.state import bound, expired, fold, new_state


@dataclass(frozen=True, slots=True)
class InRecord:
    """The fields `process` reads of a record, named as on aiokafka's records (which the
    worker passes as they are: building one object per event costs more than validating
    it). Topic and partition come with each run of records (`Runs`)."""
    key: bytes | None
    value: bytes
    timestamp: int            # broker/producer timestamp, unix ms: latency starts here


# A batch: runs of records, each under its (topic, partition), as a consumer's
# `{TopicPartition: records}.items()` gives them.
Runs = Iterable[tuple[tuple[str, int], Sequence[InRecord]]]


@dataclass(slots=True)
class Trigger:
    """A user's triggering events in one batch: they share one scored row and one recommendation."""
    event: Event              # the latest: the recommendation's trigger_event_id and trigger_ts
    produced_at: float        # the earliest one's broker timestamp (s): latency starts here
    count: int                # how many triggering events it answers


@dataclass
class BatchOutput:
    states: dict[str, dict] = field(default_factory=dict)        # user -> new state (one write per key)
    partitions: dict[str, int] = field(default_factory=dict)     # user -> its records' partition
    recommendations: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    cost_event: dict | None = None
    counts: Counter = field(default_factory=Counter)


def dead_letter_headers(topic: str, invalid: Invalid) -> list[tuple[str, bytes]]:
    return [("reason", invalid.reason.encode()), ("detail", invalid.detail.encode()),
            ("topic", topic.encode())]


_encode = msgspec.json.Encoder().encode   # recommendations and state sizes: compact JSON


class BatchProcessor:
    def __init__(self, settings: Settings, sheet: PriceSheet,
                 scorer_for: Callable[[str], Any], index: CandidateIndex | None = None,
                 ram_gb: float = 2.0, arm_of: Callable[[Any], str] | None = None) -> None:
        self.settings = settings
        self.sheet = sheet
        self.scorer_for = scorer_for      # user_id -> Scorer (lets A/B routing live elsewhere)
        self.arm_of = arm_of or (lambda scorer: "primary")   # Scorer -> its A/B arm, on each recommendation
        self.index = index or CandidateIndex()
        self.ram_gb = ram_gb
        self.cold_start = (ColdStart(settings.cold_start_min_weight, settings.cold_start_max_items)
                           if settings.cold_start else None)
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

    def process(self, runs: Runs, state_get: Callable[[str, int], dict | None],
                device: str, held_bytes: Callable[[Iterable[str]], int] | None = None,
                fetch_cpu_seconds: float = 0.0) -> BatchOutput:
        """One batch -> its outputs. `state_get(user, partition)`: the user's state or None.
        `held_bytes(users)`: the stored size of those users' states (the store's, measured
        when written); without it the batch's states are encoded to measure them.
        `fetch_cpu_seconds`: CPU another thread spent fetching and decoding the batch's records."""
        meter = BatchMeter(device=device)
        meter.other_cpu_seconds = fetch_cpu_seconds
        out = BatchOutput()
        now = time.time()
        settings, states, partitions = self.settings, out.states, out.partitions
        records, topics, partition_at, events, meter.bytes_in = _parse(runs, now, settings.default_tenant)
        # The batch by user, in order: everything after this works a user (or a batch) at a time.
        by_user: dict[str, list[int]] = {}
        get = by_user.get
        for position, event in enumerate(events):
            if event.__class__ is Invalid:
                record = records[position]
                out.counts[f"invalid:{event.reason}"] += 1
                out.dead_letters.append((record.key, record.value, dead_letter_headers(topics[position], event)))
                continue
            positions = get(event.user_id)
            if positions is None:
                by_user[event.user_id] = [position]
            else:
                positions.append(position)
        scoring = settings.trigger != "none"
        triggered: list[Trigger] = []
        history: dict[str, list[str]] = {}     # user -> last items before this batch (co-visitation)
        tally: Counter = Counter()             # (tenant, scorer, kind) -> valid events
        scorers: dict[str, Any] = {}           # user -> its scorer (A/B routing, asked once per user)
        scorer_for = self.scorer_for
        clicks: tuple[list[int], list[str], list[float]] = ([], [], [])   # user code, item, ts
        searches: list[tuple[list[str], Sequence[str]]] = []
        duplicates = 0
        for user, positions in by_user.items():
            state = state_get(user, partition_at[positions[0]])
            mine = [events[p] for p in positions]
            # An idle user starts over: stale history is worse than none. (The key stays
            # in the store until then; Faust tables have no TTL outside windows.)
            if state is None or expired(state, mine[0].ts, settings.user_ttl_s):
                state = new_state()
            if len(mine) == 1:            # one event of this user in the batch (live traffic)
                if mine[0].event_id in state["seen"]:
                    duplicates += 1
                    continue
            else:
                ids = {e.event_id for e in mine}
                if len(ids) < len(mine) or not ids.isdisjoint(state["seen"]):
                    fresh = _unseen(mine, positions, state["seen"])
                    duplicates += len(mine) - len(fresh)
                    if not fresh:
                        continue               # only duplicates: the state is unchanged
                    mine, positions = [e for e, _ in fresh], [p for _, p in fresh]
            states[user] = state
            partitions[user] = partition_at[positions[-1]]
            if scoring:
                code = len(history)
                history[user] = state["items"][-3:]     # before the fold
                trigger = None
                for event, position in zip(mine, positions):
                    if self._triggers(event, state):
                        state["last_rec_ts"] = max(state["last_rec_ts"], event.ts)
                        produced_at = records[position].timestamp / 1000.0
                        if trigger is None:
                            trigger = Trigger(event, produced_at, 1)
                        else:           # two topics: a later event can carry an earlier timestamp
                            trigger.event, trigger.count = event, trigger.count + 1
                            trigger.produced_at = min(trigger.produced_at, produced_at)
                if trigger is not None:
                    triggered.append(trigger)
            items = fold(state, mine)
            bound(state)
            if scoring:
                if items:
                    clicks[0].extend([code] * len(items))
                    clicks[1].extend(items)
                    clicks[2].extend([e.ts for e in mine if e.kind == "click"])
                if len(items) < len(mine):
                    searches += [(query_terms(e.query), e.results) for e in mine if e.kind == "search"]
            scorer = scorers[user] = scorer_for(user)
            tenant = mine[0].tenant
            if len(mine) == 1 or all([e.tenant == tenant for e in mine]):
                if items:
                    tally[tenant, scorer, "click"] += len(items)
                if len(items) < len(mine):
                    tally[tenant, scorer, "search"] += len(mine) - len(items)
            else:
                tally.update([(e.tenant, scorer, e.kind) for e in mine])
        if scoring:     # the index is read only to score: a worker that never scores skips it
            self._learn(clicks, searches, history, states)
            if self.cold_start is not None and clicks[1]:
                for version, items in self.cold_start.update(self.index, scorers.values(), clicks[1]).items():
                    out.counts["cold_start_estimates"] += len(items)
                    cache = self._nearest_cache.get(version, {})
                    for item in items:          # its vector moved: so may its nearest items
                        cache.pop(item, None)
        groups = new_groups()
        for (tenant, scorer, kind), count in tally.items():
            groups[(tenant, scorer.version, kind)].events += count   # group_key()
        valid = sum(tally.values())
        for name, count in (("duplicate", duplicates), ("valid", valid)):
            if count:                 # a Counter with the same keys as one counted event by event
                out.counts[name] += count
        if triggered:
            self._score([(trigger, scorers[trigger.event.user_id]) for trigger in triggered], out, meter, groups)
        if valid:
            state_bytes = (held_bytes(states) if held_bytes is not None
                           else sum(len(_encode(state)) for state in states.values()))
            out.cost_event = cost_event(f"b-{uuid.uuid4().hex}", meter.usage(state_bytes), groups,
                                        self.sheet, self.settings.worker_name, self.ram_gb)
        return out

    def _learn(self, clicks: tuple[list[int], list[str], list[float]],
               searches: list[tuple[list[str], Sequence[str]]],
               history: dict[str, list[str]], states: dict[str, dict]) -> None:
        """The batch's valid events into the candidate index, vectorised there (users as
        dense codes, in `history`'s order; each user's history as before the batch, terms
        as after it)."""
        if clicks[0]:
            self.index.observe_clicks(*clicks, list(history.values()),
                                      [states[u]["terms"][-4:] for u in history])
        if searches:
            terms, results = zip(*searches)
            self.index.observe_searches(terms, results)

    def _score(self, triggered: list[tuple[Trigger, Any]], out: BatchOutput, meter: BatchMeter,
               groups: dict) -> None:
        by_scorer: dict[int, list[tuple[Trigger, Any]]] = {}
        for item in triggered:
            by_scorer.setdefault(id(item[1]), []).append(item)
        for batch in by_scorer.values():
            scorer = batch[0][1]
            triggers = [trigger for trigger, _ in batch]     # one per user: one row each
            histories, candidates, terms = self._inputs([t.event.user_id for t in triggers], out, scorer)
            used = DeviceUsage()
            scores = scorer.score(histories, candidates, terms, usage=used)
            meter.device_seconds += used.device_seconds
            meter.scoring_cpu_seconds += used.cpu_seconds
            self._publish(triggers, scorer, candidates, scores, out, meter, groups)
            out.counts["scored_rows"] += len(triggers)
        out.counts["recommendations"] += len(triggered)

    def _publish(self, triggers: list[Trigger], scorer: Any, candidates: np.ndarray, scores: np.ndarray,
                 out: BatchOutput, meter: BatchMeter, groups: dict) -> None:
        """Top-K per row (padding never picked) -> one recommendation per row. The (B, K)
        picks leave numpy once, as lists; ids are looked up for the whole batch in one call."""
        scores = np.where(candidates > 0, scores, -np.inf)
        k = min(self.settings.top_k, scores.shape[1])
        top = np.argsort(-scores, axis=1)[:, :k]
        top_items = np.take_along_axis(candidates, top, axis=1)
        names = scorer.item_ids(top_items)
        top_scores = np.round(np.take_along_axis(scores, top, axis=1).astype(np.float64), 5).tolist()
        top_items = top_items.tolist()
        arm = self.arm_of(scorer)
        bytes_out = 0
        for row, trigger in enumerate(triggers):
            event = trigger.event
            row_names, row_scores = names[row * k:(row + 1) * k], top_scores[row]
            if 0 in top_items[row]:     # fewer candidates than K: padding sorted in at -inf
                picks = [c for c, i in enumerate(top_items[row]) if i > 0]
                row_names, row_scores = [row_names[c] for c in picks], [row_scores[c] for c in picks]
            latency_us = int((time.time() - trigger.produced_at) * 1e6)
            latency_ms = latency_us / 1000
            value = _encode({"user_id": event.user_id,
                             "items": row_names,
                             "scores": row_scores,
                             "model_version": scorer.version, "arm": arm, "trigger_event_id": event.event_id,
                             "trigger_ts": event.ts,  # event time: click attribution windows start here
                             "triggers": trigger.count,
                             "latency_ms": latency_ms, "ts": time.time(), "tenant": event.tenant})
            bytes_out += len(value)
            out.recommendations.append((event.user_id.encode(), value))
            group = groups[(event.tenant, scorer.version, event.kind)]   # group_key()
            group.recommendations += 1
            group.latencies_us.append(latency_us)
        meter.bytes_out += bytes_out

    def _nearest(self, scorer: Any, items: set[str], n: int = 10) -> dict[str, list[int]]:
        """The model's nearest items (as indices) to every item in the batch: one call for
        the items not cached yet. Trained embeddings are fixed per version; an item whose
        estimate (cold start) moves is dropped from the cache when it does."""
        cache = self._nearest_cache.setdefault(scorer.version, {})
        if len(cache) > 200_000:
            cache.clear()
        missing = [(item, scorer.item_index(item)) for item in items if item not in cache]
        missing = [(item, i) for item, i in missing if i > 0]
        if missing:
            near = scorer.nearest_items(np.array([i for _, i in missing], dtype=np.int64), n)
            cache.update((item, row.tolist()) for (item, _), row in zip(missing, near))
        return cache

    def _inputs(self, users: list[str], out: BatchOutput, scorer: Any
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Model inputs for these users' states: histories (B, T), candidates (B, C), query
        terms (B, 8). Candidate sources are counted per row.

        Per row only the user's own candidates are merged in Python (first_unique); the
        trending/catalog fill, the same list for every row, is vectorised (fill_from_shared).
        """
        n, t = self.settings.candidates, scorer.max_len
        lookup = scorer.item_indices
        states = [out.states[user] for user in users]
        self.index.begin_batch()
        covisit = self.index.ranked_many("covisit", {i for s in states for i in s["items"][-5:]}, lookup)
        by_term = self.index.ranked_many("query", {w for s in states for w in s["terms"][-3:]}, lookup)
        nearest = self._nearest(scorer, {i for s in states for i in s["items"][-2:]})
        shared = dict.fromkeys(lookup(self.index.trending_top(n)), SOURCES.index("trending"))
        for i in range(1, min(n, scorer.num_items) + 1):
            shared.setdefault(i, SOURCES.index("catalog"))
        shared.pop(0, None)
        histories: list[int] = []
        terms: list[int] = []
        personal: list[list[int]] = []
        blocked: list[list[int]] = []
        own_counts = [0, 0, 0]
        for state in states:
            items = state["items"]
            known = lookup(items[-t:])
            if 0 in known:
                known = [i for i in known if i]
            histories += [0] * (t - len(known))          # left-padded
            histories += known
            q = scorer.query_term_ids(state["terms"][-8:])[:8] if state["terms"] else []
            terms += q
            terms += [0] * (8 - len(q))
            recent = items[-5:][::-1]
            parts = (_concat([covisit[i] for i in recent], n // 2),
                     _concat([by_term[w] for w in state["terms"][-3:]], n // 4),
                     _concat([nearest.get(i, ()) for i in recent[:2]], n // 4))
            bought = lookup(state["bought"])
            own, counts = first_unique(parts, {0, *bought}, n)   # 0: an item the model does not know
            personal.append(own)
            blocked.append(bought)
            own_counts = [a + b for a, b in zip(own_counts, counts)]
        candidates, shared_counts = fill_from_shared(personal, blocked, list(shared), list(shared.values()), n)
        counts = own_counts + shared_counts.tolist()[len(own_counts):]
        for code, count in enumerate(counts):
            if count:
                out.counts[f"candidate:{SOURCES[code]}"] += count
        rows = len(users)
        return (np.array(histories, dtype=np.int64).reshape(rows, t), candidates,
                np.array(terms, dtype=np.int64).reshape(rows, 8))


def _unseen(events: list[Event], positions: list[int], seen: list[str]) -> list[tuple[Event, int]]:
    """A user's events whose ids are neither in `seen` nor earlier in the batch."""
    ids = set(seen)
    fresh = []
    for event, position in zip(events, positions):
        if event.event_id not in ids:
            ids.add(event.event_id)
            fresh.append((event, position))
    return fresh


def _parse(runs: Runs, now: float, default_tenant: str
           ) -> tuple[list[InRecord], list[str], list[int], list[Event | Invalid], int]:
    """Every record parsed, in order, a run at a time: the records, each one's topic and
    partition, its Event or Invalid; and the bytes read."""
    records: list[InRecord] = []
    topics: list[str] = []
    partitions: list[int] = []
    events: list[Event | Invalid] = []
    size = 0
    for (topic, partition), run in runs:
        values = [r.value for r in run]
        size += sum(map(len, values)) + sum(map(len, filter(None, [r.key for r in run])))
        events += parse_batch(topic, values, now, default_tenant)
        records += run
        topics += [topic] * len(run)
        partitions += [partition] * len(run)
    return records, topics, partitions, events, size


def runs_of(records: Iterable[Any], partition: int = 0) -> list[tuple[tuple[str, int], list[InRecord]]]:
    """Records that carry their topic (the traffic generator's, a test's), stamped now, as
    the runs `process` takes: consecutive records of a topic under (topic, partition)."""
    stamp = int(time.time() * 1000)
    return [((topic, partition), [InRecord(r.key, r.value, stamp) for r in run])
            for topic, run in groupby(records, attrgetter("topic"))]


def _concat(lists: list[Sequence[int]], limit: int) -> list[int]:
    """The lists end to end, cut to `limit` (list.extend: the copying stays in C)."""
    out: list[int] = []
    for part in lists:
        out.extend(part)
        if len(out) >= limit:
            return out[:limit]
    return out
