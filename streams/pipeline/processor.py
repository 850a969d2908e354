"""The hot path, free of Faust: one micro-batch of raw records in, everything it causes out.

validate -> dead-letter or deduplicate -> fold into (tenant, user) state -> learn each
tenant's candidates -> score one row per user with a triggering event, in one model call
per version -> top-K -> recommendations + one cost event. Faust wiring lives in
streams/worker/app.py.

A recommendation is published (and counted) once per distinct output: a user's triggering
events in one batch all see the same state (the one after the batch), so they share one
scored row and one recommendation (streams/pipeline/scoring.py).

A record that fails at any stage after validation is dead-lettered alone with that stage
(streams/pipeline/dead_letters.py) and the rest of the batch goes on: each user's state
is folded under its own guard, and a scoring call that fails is split in halves until the
failing rows are found. Guards cost nothing until something fails. Only a failure that
no record explains (the model failing its own test row) stops the batch: `SystemicFailure`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from typing import Any

import msgspec

from reckon.streams.core.settings import Settings
from reckon.streams.costs.meter import BatchMeter, cost_event, new_groups
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.pipeline.candidates import CandidateIndex
from reckon.streams.pipeline.coldstart import ColdStart
from reckon.streams.pipeline.contracts import Event, Invalid, parse_batch, query_terms
from reckon.streams.pipeline.dead_letters import DeadLetter, failure
from reckon.streams.pipeline.scoring import BatchScorer, SystemicFailure, Trigger
from reckon.streams.pipeline.state import fold, new_state, state_key

log = logging.getLogger(__name__)

MAX_TENANT_INDEXES = 1024    # candidate indexes kept (least recently used dropped): set RECKON_TENANTS


@dataclass(frozen=True, slots=True)
class InRecord:
    """The fields `process` reads of a record, named as on aiokafka's records (which the
    worker passes as they are: building one object per event costs more than validating
    it). Topic and partition come with each run of records (`Runs`)."""
    key: bytes | None
    value: bytes
    timestamp: int            # broker/producer timestamp, unix ms: latency starts here
    offset: int = -1


# A batch: runs of records, each under its (topic, partition), as a consumer's
# `{TopicPartition: records}.items()` gives them.
Runs = Iterable[tuple[tuple[str, int], Sequence[InRecord]]]


@dataclass
class BatchOutput:
    states: dict[bytes, dict] = field(default_factory=dict)      # state key -> new state (one write per key)
    partitions: dict[bytes, int] = field(default_factory=dict)   # state key -> its records' partition
    recommendations: list[tuple[bytes, bytes]] = field(default_factory=list)
    latest: dict[bytes, bytes] = field(default_factory=dict)     # state key -> its recommendation's value
    dead_letters: list[DeadLetter] = field(default_factory=list)
    cost_event: dict | None = None
    counts: Counter = field(default_factory=Counter)


@dataclass
class _Learning:
    """One tenant's valid events of the batch, as its candidate index learns them."""
    users: list[int] = field(default_factory=list)       # per click: the user's code (0..U-1)
    items: list[str] = field(default_factory=list)       # per click
    ts: list[float] = field(default_factory=list)        # per click
    history: list[list[str]] = field(default_factory=list)   # per user: last items before the batch
    states: list[dict] = field(default_factory=list)     # per user: the state (terms after the batch)
    searches: list[tuple[list[str], Sequence[str]]] = field(default_factory=list)


_encode = msgspec.json.Encoder().encode   # state sizes, as the store encodes states

__all__ = ["BatchOutput", "BatchProcessor", "InRecord", "Runs", "SystemicFailure", "runs_of"]


class BatchProcessor:
    def __init__(self, settings: Settings, sheet: PriceSheet, scorer_for: Callable[[str], Any],
                 ram_gb: float = 2.0, arm_of: Callable[[Any], str] | None = None) -> None:
        self.settings = settings
        self.sheet = sheet
        self.scorer_for = scorer_for      # user_id -> Scorer (lets A/B routing live elsewhere)
        self.ram_gb = ram_gb
        self.tenants: Collection[str] | None = frozenset(settings.tenants) or None
        self.cold_start = (ColdStart(settings.cold_start_min_weight, settings.cold_start_max_items)
                           if settings.cold_start else None)
        self._indexes: OrderedDict[str, CandidateIndex] = OrderedDict()
        # arm_of: Scorer -> its A/B arm, on each recommendation
        self.scoring = BatchScorer(settings, self.index, arm_of or (lambda scorer: "primary"))

    def index(self, tenant: str) -> CandidateIndex:
        """The tenant's candidate index (made on first use; the least recently used go
        past MAX_TENANT_INDEXES)."""
        index = self._indexes.get(tenant)
        if index is None:
            index = self._indexes[tenant] = CandidateIndex()
            if len(self._indexes) > MAX_TENANT_INDEXES:
                self._indexes.popitem(last=False)
        else:
            self._indexes.move_to_end(tenant)
        return index

    def _triggers(self, event: Event, state: dict) -> bool:
        s = self.settings
        if s.trigger == "none" or (s.trigger != "all" and s.trigger.rstrip("s") != event.kind):
            return False
        # Clicks and searches arrive on two topics, so a user's events can interleave out of
        # ts order: without a throttle every event triggers, whatever its ts.
        if not s.trigger_min_interval_s:
            return True
        return event.ts - state["last_rec_ts"] >= s.trigger_min_interval_s

    def process(self, runs: Runs, state_get: Callable[[bytes, int], dict | None],
                device: str, held_bytes: Callable[[Iterable[bytes]], int] | None = None,
                fetch_cpu_seconds: float = 0.0) -> BatchOutput:
        """One batch -> its outputs. `state_get(key, partition)`: the state under that state
        key (streams/pipeline/state.py) or None. `held_bytes(keys)`: the stored size of those
        states (the store's, measured when written); without it the batch's states are
        encoded to measure them. `fetch_cpu_seconds`: CPU another thread spent fetching and
        decoding the batch's records. Raises only SystemicFailure."""
        meter = BatchMeter(device=device)
        meter.other_cpu_seconds = fetch_cpu_seconds
        meter.other_cpu_seconds = fetch_cpu_seconds
        out = BatchOutput()
        now = time.time()
        settings, states, partitions = self.settings, out.states, out.partitions
        batch = _parse(runs, now, settings.default_tenant, self.tenants, out)
        records, where, events = batch.records, batch.where, batch.events
        meter.bytes_in = batch.size
        # The batch by (tenant, user), in order: everything after this works a user (or a batch) at a
        # time. Keyed by both, a tenant's users keep their order whatever other tenants send.
        by_user: dict[tuple[str, str], list[int]] = {}
        get = by_user.get
        for position, event in enumerate(events):
            if event.__class__ is Invalid:
                _dead(out, batch, position, event.reason, event.detail)
                continue
            user = (event.tenant, event.user_id)
            positions = get(user)
            if positions is None:
                by_user[user] = [position]
            else:
                positions.append(position)
        scoring = settings.trigger != "none"
        triggered: list[Trigger] = []
        learning: dict[str, _Learning] = {}
        tally: Counter = Counter()             # (tenant, scorer, kind) -> valid events
        scorer_for = self.scorer_for
        scorers: dict[int, Any] = {}           # the batch's scorers (both arms of an A/B split)
        duplicates = 0
        ttl = settings.user_ttl_s
        for (tenant, user), positions in by_user.items():
            mine = [events[p] for p in positions]
            first = mine[0]
            try:
                key = state_key(tenant, user)
                state = state_get(key, where[positions[0]][1])
                # An idle user starts over: stale history is worse than none. (The key stays
                # in the store until then; Faust tables have no TTL outside windows.)
                if state is None or first.ts - state["last_seen"] > ttl:
                    state = new_state()
                if len(mine) == 1:
                    if first.event_id in state["seen"]:
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
                previous = state["items"][-3:] if scoring else None    # before the fold
                fired = []
                if scoring:
                    for event, position in zip(mine, positions):
                        if self._triggers(event, state):
                            state["last_rec_ts"] = max(state["last_rec_ts"], event.ts)
                            fired.append((event, position))
                items = fold(state, mine)
            except Exception as exc:   # this user's records alone: the batch goes on
                detail = failure(exc)
                for position in positions:
                    _dead(out, batch, position, "state_failed", detail)
                continue
            states[key] = state
            partitions[key] = where[positions[-1]][1]
            scorer = scorer_for(user)
            if scoring:
                scorers[id(scorer)] = scorer
                learn = learning.get(tenant)
                if learn is None:
                    learn = learning[tenant] = _Learning()
                code = len(learn.history)
                learn.history.append(previous)
                learn.states.append(state)
                if items:
                    learn.users.extend([code] * len(items))
                    learn.items.extend(items)
                    learn.ts.extend([e.ts for e in mine if e.kind == "click"])
                if len(items) < len(mine):
                    learn.searches += [(query_terms(e.query), e.results) for e in mine if e.kind == "search"]
                triggered += [Trigger(event, records[p].timestamp / 1000.0, p, key, scorer) for event, p in fired]
            if items:
                tally[tenant, scorer, "click"] += len(items)
            if len(items) < len(mine):
                tally[tenant, scorer, "search"] += len(mine) - len(items)
        for tenant, learn in learning.items():   # the index is read only to score: a worker that never scores skips it
            self._learn(tenant, learn, out)
            if self.cold_start is not None and learn.items:
                self._cold_start(tenant, learn.items, scorers.values(), out)
        groups = new_groups()
        if triggered:
            scored = self.scoring.score(triggered, states, meter, groups, out.counts)
            out.recommendations += scored.recommendations
            out.latest = scored.latest
            for trigger, reason, detail in scored.failed:   # dead-lettered after its state was folded
                _dead(out, batch, trigger.position, reason, detail)
                tally[trigger.event.tenant, trigger.scorer, trigger.event.kind] -= 1
        for (tenant, scorer, kind), count in tally.items():
            if count:
                groups[(tenant, scorer.version, kind)].events += count   # group_key()
        valid = sum(tally.values())
        for name, count in (("duplicate", duplicates), ("valid", valid)):
            if count:                 # a Counter with the same keys as one counted event by event
                out.counts[name] += count
        if valid:
            state_bytes = (held_bytes(states) if held_bytes is not None
                           else sum(len(_encode(state)) for state in states.values()))
            out.cost_event = cost_event(f"b-{uuid.uuid4().hex}", meter.usage(state_bytes), groups,
                                        self.sheet, self.settings.worker_name, self.ram_gb)
        return out

    def _cold_start(self, tenant: str, items: list[str], scorers: Iterable[Any], out: BatchOutput) -> None:
        """Rows in the scorers' item tables for the tenant's clicked items their versions never
        saw, estimated from this tenant's co-visitation (streams/pipeline/coldstart.py)."""
        for version, estimated in self.cold_start.update(self.index(tenant), scorers, items).items():
            out.counts["cold_start_estimates"] += len(estimated)
            self.scoring.inputs.forget_nearest(version, estimated)   # their vectors moved

    def _learn(self, tenant: str, learn: _Learning, out: BatchOutput) -> None:
        """One tenant's valid events into its candidate index, vectorised there (users as
        dense codes; each user's history as before the batch, terms as after it). The index
        is statistics no record depends on: if learning fails, the batch goes on unlearned."""
        index = self.index(tenant)
        try:
            if learn.users:
                index.observe_clicks(learn.users, learn.items, learn.ts, learn.history,
                                     [state["terms"][-4:] for state in learn.states])
            if learn.searches:
                terms, results = zip(*learn.searches)
                index.observe_searches(terms, results)
        except Exception:
            log.exception("tenant %r: learning candidates from a batch failed; the batch goes on", tenant)
            out.counts["learn_failed"] += 1


def _unseen(events: list[Event], positions: list[int], seen: list[str]) -> list[tuple[Event, int]]:
    """A user's events whose ids are neither in `seen` nor earlier in the batch."""
    ids = set(seen)
    fresh = []
    for event, position in zip(events, positions):
        if event.event_id not in ids:
            ids.add(event.event_id)
            fresh.append((event, position))
    return fresh


@dataclass
class _Parsed:
    """A batch's records in order: each one's (topic, partition), Event or Invalid; bytes read."""
    records: list[Any] = field(default_factory=list)
    where: list[tuple[str, int]] = field(default_factory=list)
    events: list[Event | Invalid] = field(default_factory=list)
    size: int = 0


def _parse(runs: Runs, now: float, default_tenant: str, tenants: Collection[str] | None,
           out: BatchOutput) -> _Parsed:
    """Every record parsed, in order, a run at a time. The parser never raises on input; if
    it fails anyway, the run is parsed a record at a time and a record it fails on is
    dead-lettered (parse_failed)."""
    batch = _Parsed()
    for (topic, partition), run in runs:
        values = [r.value for r in run]
        batch.size += sum(map(len, values)) + sum(map(len, filter(None, [r.key for r in run])))
        try:
            parsed = parse_batch(topic, values, now, default_tenant, tenants)
        except Exception:
            parsed = [_parse_alone(topic, value, now, default_tenant, tenants) for value in values]
        batch.events += parsed
        batch.records += run
        batch.where += [(topic, partition)] * len(run)
    return batch


def _parse_alone(topic: str, value: bytes, now: float, default_tenant: str,
                 tenants: Collection[str] | None) -> Event | Invalid:
    try:
        return parse_batch(topic, [value], now, default_tenant, tenants)[0]
    except Exception as exc:
        return Invalid("parse_failed", failure(exc))


def _dead(out: BatchOutput, batch: _Parsed, position: int, reason: str, detail: str) -> None:
    record = batch.records[position]
    topic, partition = batch.where[position]
    out.dead_letters.append(DeadLetter(record.key, record.value, topic, partition,
                                       getattr(record, "offset", -1), reason, detail))
    out.counts[f"invalid:{reason}"] += 1


def runs_of(records: Iterable[Any], partition: int = 0) -> list[tuple[tuple[str, int], list[InRecord]]]:
    """Records that carry their topic (the traffic generator's, a test's), stamped now, as
    the runs `process` takes: consecutive records of a topic under (topic, partition)."""
    stamp = int(time.time() * 1000)
    offsets: Counter = Counter()
    out = []
    for topic, run in groupby(records, attrgetter("topic")):
        run = list(run)
        out.append(((topic, partition), [InRecord(r.key, r.value, stamp, offsets[topic] + i)
                                         for i, r in enumerate(run)]))
        offsets[topic] += len(run)
    return out

