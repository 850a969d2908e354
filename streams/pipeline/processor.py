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

import numpy as np

from reckon.streams.core.settings import Settings
from reckon.streams.costs.meter import BatchMeter, cost_event, new_groups
from reckon.streams.costs.pricing import PriceSheet
from reckon.streams.pipeline.arrays import run_starts
from reckon.streams.pipeline.candidates import CandidateIndex
from reckon.streams.pipeline.coldstart import ColdStart
from reckon.streams.pipeline.contracts import TS_FUTURE_S, Click, Event, Invalid, parse_batch, query_terms
from reckon.streams.pipeline.dead_letters import DeadLetter, failure
from reckon.streams.pipeline.scoring import BatchScorer, SystemicFailure, Trigger
from reckon.streams.pipeline.user_rows import UserRows
from reckon.streams.pipeline.user_table import UserTable, id_hashes

log = logging.getLogger(__name__)

MAX_TENANT_INDEXES = 1024    # candidate indexes kept (least recently used dropped): set RECKON_TENANTS


@dataclass(frozen=True, slots=True)
class InRecord:
    """The fields `process` reads of a record, named as on aiokafka's records (which the
    worker passes as they are: building one object per event costs more than validating
    it). Topic and partition come with each run of records (`Runs`)."""
    key: bytes | None
    value: bytes | None        # None: a tombstone, dead-lettered (no_value)
    timestamp: int            # broker/producer timestamp, unix ms: latency starts here
    offset: int = -1


# A batch: runs of records, each under its (topic, partition), as a consumer's
# `{TopicPartition: records}.items()` gives them.
Runs = Iterable[tuple[tuple[str, int], Sequence[InRecord]]]


@dataclass
class BatchOutput:
    # the user-table rows the batch changed, and each one's partition (that of its last new
    # event): the caller stages them (UserRows.stage) once the batch's outputs are sent
    changed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    changed_partitions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
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
    rows: list[int] = field(default_factory=list)        # per user: its row in the user table
    terms: list[list[str]] = field(default_factory=list)     # per user: query terms after the batch
    searches: list[tuple[list[str], Sequence[str]]] = field(default_factory=list)


__all__ = ["BatchOutput", "BatchProcessor", "InRecord", "Runs", "SystemicFailure", "runs_of"]


class BatchProcessor:
    def __init__(self, settings: Settings, sheet: PriceSheet, scorers_for: Callable[[Sequence[str]], list[Any]],
                 ram_gb: float = 2.0, arm_of: Callable[[Any], str] | None = None) -> None:
        self.settings = settings
        self.sheet = sheet
        self.scorers_for = scorers_for    # user ids -> their Scorers (lets A/B routing live elsewhere)
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

    def _triggers(self, event: Event, last_rec_ts: float) -> bool:
        s = self.settings
        if s.trigger == "none" or (s.trigger != "all" and s.trigger.rstrip("s") != event.kind):
            return False
        # Clicks and searches arrive on two topics, so a user's events can interleave out of
        # ts order: without a throttle every event triggers, whatever its ts.
        if not s.trigger_min_interval_s:
            return True
        return event.ts - last_rec_ts >= s.trigger_min_interval_s

    def process(self, runs: Runs, users: UserRows, device: str, fetch_cpu_seconds: float = 0.0) -> BatchOutput:
        """One batch -> its outputs; the users' states in `users` folded (in place: stage
        `out.changed` once the outputs are sent).
        `fetch_cpu_seconds`: CPU another thread spent fetching and decoding the batch's
        records. Raises only SystemicFailure."""
        meter = BatchMeter(device=device)
        meter.other_cpu_seconds = fetch_cpu_seconds
        out = BatchOutput()
        settings = self.settings
        batch = _parse(runs, time.time(), settings.default_tenant, self.tenants, out)
        meter.bytes_in = batch.size
        events = batch.events
        positions = [p for p, event in enumerate(events) if event.__class__ is not Invalid]
        if len(positions) < len(events):
            for p, event in enumerate(events):
                if event.__class__ is Invalid:
                    _dead(out, batch, p, event.reason, event.detail)
            events = [events[p] for p in positions]
        groups = new_groups()
        if events:
            self._fold(events, np.array(positions, dtype=np.int64), batch, users, meter, groups, out)
        return out

    def _fold(self, events: list[Event], positions: np.ndarray, batch: _Parsed, users: UserRows,
              meter: BatchMeter, groups: dict, out: BatchOutput) -> None:
        """The batch's valid events into their users' rows, all users at once; then, for a
        worker that scores, its triggers, learning and scoring."""
        settings = self.settings
        who = [(event.tenant, event.user_id) for event in events]
        rows, failed = users.rows_of(who, lambda i: int(batch.partitions[positions[i]]))
        table = users.table
        columns = None
        if not failed:
            try:
                columns = _columns(events, table)
            except Exception:   # an event no column takes (the contract should make this impossible)
                pass
        if columns is None:     # a user whose state cannot be read, an event no column takes: those alone
            for i, event in enumerate(events):
                if i not in failed:
                    try:
                        _columns([event], table)
                    except Exception as exc:
                        failed[i] = failure(exc)
            for i, detail in failed.items():
                _dead(out, batch, int(positions[i]), "state_failed", detail)
            keep = np.array([i for i in range(len(events)) if i not in failed], dtype=np.int64)
            events, who, rows, positions = [events[i] for i in keep], [who[i] for i in keep], rows[keep], positions[keep]
            if not events:
                return
            columns = _columns(events, table)
        hashes, ts, items, purchase, searches = columns
        scoring = settings.trigger != "none"
        previous = self._latest_items(table, rows) if scoring else None     # before the fold
        fresh = table.fold_batch(rows, hashes, ts, items, purchase, searches, settings.user_ttl_s)
        kept = np.flatnonzero(fresh)
        if len(kept) < len(events):
            out.counts["duplicate"] += len(events) - len(kept)
        if not len(kept):
            return
        # each changed user once, staged under the partition of its last new event
        by_row = np.argsort(rows[kept], kind="stable")
        ordered = rows[kept][by_row]
        starts = run_starts(ordered)
        last = np.r_[starts[1:], len(ordered)] - 1
        changed = out.changed = ordered[starts]
        out.changed_partitions = batch.partitions[positions[kept[by_row[last]]]]
        # each changed user's scorer (A/B routing is by user id), asked once per batch
        owners = [who[i] for i in kept[by_row[starts]].tolist()]
        scorers = self.scorers_for([user for _, user in owners])
        tally = _tally([(tenant, scorer) for (tenant, _), scorer in zip(owners, scorers)],
                       np.searchsorted(changed, rows[kept]), items[kept] >= 0)
        if scoring:
            self._score(events, rows, kept, positions, batch, previous, searches,
                        dict(zip(changed.tolist(), scorers)), users, meter, groups, tally, out)
        for (tenant, scorer, kind), count in tally.items():
            if count:
                groups[(tenant, scorer.version, kind)].events += count   # group_key()
        valid = sum(tally.values())
        if valid:
            out.counts["valid"] += valid
            out.cost_event = cost_event(f"b-{uuid.uuid4().hex}", meter.usage(users.held_bytes(changed)), groups,
                                        self.sheet, self.settings.worker_name, self.ram_gb)

    @staticmethod
    def _latest_items(table: UserTable, rows: np.ndarray) -> dict[int, list[str]]:
        """Each row's last three items (names), as they were before the batch."""
        distinct = np.unique(rows)
        return dict(zip(distinct.tolist(), table.latest_items(distinct, 3)))

    def _score(self, events: list[Event], rows: np.ndarray, kept: np.ndarray, positions: np.ndarray,
               batch: _Parsed, previous: dict[int, list[str]], searches: dict[int, list[str]],
               scorer_of: dict[int, Any], users: UserRows, meter: BatchMeter, groups: dict, tally: Counter,
               out: BatchOutput) -> None:
        """Triggers of the new events (in order, throttled per user), the tenants' candidate
        learning, and one scored row per triggering user. `searches`: each search's query
        terms by event; `scorer_of`: each changed row's scorer."""
        table = users.table
        last_rec_ts = table.last_rec_ts
        triggered: list[Trigger] = []
        learning: dict[str, _Learning] = {}
        code_of: dict[int, tuple[_Learning, int]] = {}       # row -> (its tenant's learning, its code there)
        scorers: dict[int, Any] = {}
        state_rows: dict[bytes, int] = {}                     # state key -> row, of the triggering users
        for i in kept.tolist():
            event, row = events[i], int(rows[i])
            tenant = event.tenant
            found = code_of.get(row)
            if found is None:
                learn = learning.get(tenant)
                if learn is None:
                    learn = learning[tenant] = _Learning()
                found = code_of[row] = (learn, len(learn.history))
                learn.history.append(previous[row])
                learn.rows.append(row)
            learn, code = found
            if event.__class__ is Click:
                learn.users.append(code)
                learn.items.append(event.item_id)
                learn.ts.append(event.ts)
            else:
                learn.searches.append((searches[i], event.results))
            if self._triggers(event, float(last_rec_ts[row])):
                last_rec_ts[row] = max(last_rec_ts[row], event.ts)
                scorer = scorer_of[row]
                scorers[id(scorer)] = scorer
                position = int(positions[i])
                key = users.key(row)
                state_rows[key] = row
                produced_at = batch.records[position].timestamp / 1000.0
                # Producers set record timestamps: one from before its event happened (past the
                # skew the contract tolerates) or from after the record was read is no start for
                # a latency, and one such record would set every percentile above it.
                if not event.ts - TS_FUTURE_S <= produced_at <= batch.now:
                    produced_at = min(event.ts, batch.now)
                    out.counts["record_ts_replaced"] += 1
                triggered.append(Trigger(event, produced_at, position, key, scorer))
        # every changed user's state after the batch, made once: learning reads its terms, scoring all of it
        changed = [row for learn in learning.values() for row in learn.rows]
        after = dict(zip(changed, table.states(np.array(changed, dtype=np.int64))))
        for tenant, learn in learning.items():
            learn.terms = [after[row]["terms"] for row in learn.rows]
            self._learn(tenant, learn, out)
            if self.cold_start is not None and learn.items:
                self._cold_start(tenant, learn.items, scorers.values(), out)
        if not triggered:
            return
        states = {key: after[row] for key, row in state_rows.items()}
        scored = self.scoring.score(triggered, states, meter, groups, out.counts)
        out.recommendations += scored.recommendations
        out.latest = scored.latest
        for trigger, reason, detail in scored.failed:   # dead-lettered after its state was folded
            _dead(out, batch, trigger.position, reason, detail)
            tally[trigger.event.tenant, trigger.scorer, trigger.event.kind] -= 1

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
                                     [terms[-4:] for terms in learn.terms])
            if learn.searches:
                terms, results = zip(*learn.searches)
                index.observe_searches(terms, results)
        except Exception:
            log.exception("tenant %r: learning candidates from a batch failed; the batch goes on", tenant)
            out.counts["learn_failed"] += 1


@dataclass
class _Parsed:
    """A batch's records in order: each one's (topic, partition), Event or Invalid; bytes read."""
    records: list[Any] = field(default_factory=list)
    where: list[tuple[str, int]] = field(default_factory=list)
    events: list[Event | Invalid] = field(default_factory=list)
    size: int = 0
    now: float = 0.0           # when it was parsed, unix s
    partitions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))   # per record


def _columns(events: list[Event], table: UserTable
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, list[str]]]:
    """What `UserTable.fold_batch` takes of each event: id hash, ts, item code (-1: a
    search), purchase or not; and each search's query terms (by position)."""
    hashes = id_hashes([event.event_id for event in events])
    ts = np.array([event.ts for event in events], dtype=np.float64)
    clicks = [event.__class__ is Click for event in events]
    if all(clicks):
        items = table.items_names.encode([event.item_id for event in events])
        purchase = np.array([event.action == "purchase" for event in events])
        return hashes, ts, items, purchase, {}
    items = np.full(len(events), -1, dtype=np.int32)
    items[np.array(clicks)] = table.items_names.encode([e.item_id for e, c in zip(events, clicks) if c])
    purchase = np.array([c and e.action == "purchase" for e, c in zip(events, clicks)])
    return hashes, ts, items, purchase, {i: query_terms(e.query) for i, (e, c) in enumerate(zip(events, clicks)) if not c}


def _tally(groups: list[tuple[str, Any]], user_of: np.ndarray, is_click: np.ndarray) -> Counter:
    """Valid events by (tenant, scorer, kind), from each changed user's (tenant, scorer)
    (`groups`) and each event's user (`user_of`) and kind: counted per group with array
    operations (a loop over the users was ~0.4 us per user of live traffic)."""
    index = {group: i for i, group in enumerate(dict.fromkeys(groups))}
    of_event = np.fromiter(map(index.__getitem__, groups), np.int64, len(groups))[user_of]
    clicks = np.bincount(of_event, weights=is_click, minlength=len(index)).astype(np.int64).tolist()
    events = np.bincount(of_event, minlength=len(index)).tolist()
    tally: Counter = Counter()
    for (tenant, scorer), n_clicks, n_events in zip(index, clicks, events):
        if n_clicks:
            tally[tenant, scorer, "click"] = n_clicks
        if n_events > n_clicks:
            tally[tenant, scorer, "search"] = n_events - n_clicks
    return tally


def _parse(runs: Runs, now: float, default_tenant: str, tenants: Collection[str] | None,
           out: BatchOutput) -> _Parsed:
    """Every record parsed, in order, a run at a time. The parser never raises on input; if
    it fails anyway, the run is parsed a record at a time and a record it fails on is
    dead-lettered (parse_failed)."""
    batch = _Parsed(now=now)
    lengths: list[int] = []
    partitions: list[int] = []
    for (topic, partition), run in runs:
        values = [r.value for r in run]
        batch.size += sum(map(len, filter(None, values))) + sum(map(len, filter(None, [r.key for r in run])))
        try:
            parsed = parse_batch(topic, values, now, default_tenant, tenants)
        except Exception:
            parsed = [_parse_alone(topic, value, now, default_tenant, tenants) for value in values]
        batch.events += parsed
        batch.records += run
        batch.where += [(topic, partition)] * len(run)
        lengths.append(len(run))
        partitions.append(partition)
    batch.partitions = np.repeat(np.array(partitions, dtype=np.int32), lengths)
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

