"""Scoring a batch's triggers: one model call per version for every user that triggered,
top-K, one recommendation per user (streams/pipeline/processor.py decides the triggers).

A user's triggering events in one batch all see the same state (the one after the batch),
so they share one scored row and one recommendation: it names the latest of them as its
trigger (the state it reflects; click attribution starts there), says how many it answers
(`triggers`), and its latency runs from the earliest of them (no event's wait is hidden).

A call that fails is split in halves until the failing rows are found; their triggers, and
a recommendation that fails to encode, come back as failures for the processor to
dead-letter alone. When every row fails, the model is asked to score its own test row: if
it cannot, the model is broken, not the records (SystemicFailure).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec
import numpy as np

from reckon.models.serving.threads import DeviceUsage
from reckon.streams.core.errors import ReckonError
from reckon.streams.core.settings import Settings
from reckon.streams.costs.meter import BatchMeter
from reckon.streams.pipeline.candidates import SOURCES, CandidateIndex
from reckon.streams.pipeline.contracts import Event
from reckon.streams.pipeline.dead_letters import failure
from reckon.streams.pipeline.inputs import InputBuilder, Inputs


class SystemicFailure(ReckonError):
    """A stage fails whatever the records: the model cannot score even its own test row."""


class Trigger(NamedTuple):     # a tuple: one is made per triggering event
    event: Event
    produced_at: float        # the record's timestamp, unix s
    position: int             # in the batch
    key: bytes                # the user's state key
    scorer: Any


@dataclass
class Scored:
    recommendations: list[tuple[bytes, bytes]] = field(default_factory=list)
    latest: dict[bytes, bytes] = field(default_factory=dict)   # state key -> its recommendation's value
    failed: list[tuple[Trigger, str, str]] = field(default_factory=list)   # trigger, reason, detail


class Ranked(NamedTuple):
    items: list[str]
    scores: list[float]


_encode = msgspec.json.Encoder().encode   # recommendations: compact JSON


class BatchScorer:
    def __init__(self, settings: Settings, index_of: Callable[[str], CandidateIndex],
                 arm_of: Callable[[Any], str]) -> None:
        self.settings = settings
        self.index_of = index_of             # tenant -> its candidate index
        self.arm_of = arm_of                 # scorer -> its A/B arm ("primary", "challenger")
        self.inputs = InputBuilder(settings.candidates)

    def score(self, triggered: list[Trigger], states: Mapping[bytes, dict], meter: BatchMeter, groups: dict,
              counts: Counter) -> Scored:
        """Score every user with a trigger once and publish one recommendation per user (states:
        after the batch, by state key)."""
        by_scorer: dict[int, list[Trigger]] = {}
        for trigger in triggered:
            by_scorer.setdefault(id(trigger.scorer), []).append(trigger)
        out = Scored()
        for group in by_scorer.values():
            scorer = group[0].scorer
            rows: dict[bytes, list[Trigger]] = {}       # state key -> its triggers, in batch order
            for trigger in group:
                rows.setdefault(trigger.key, []).append(trigger)
            answers = list(rows.values())
            candidates, scores, failed = self._score_rows(
                [(triggers[0].event.tenant, states[key]) for key, triggers in rows.items()], scorer, meter, counts)
            counts["scored_rows"] += len(rows) - len(failed)
            if failed:
                out.failed += [(t, "score_failed", failed[row]) for row in failed for t in answers[row]]
            self._publish([(row, triggers) for row, triggers in enumerate(answers) if row not in failed],
                          scorer, candidates, scores, meter, groups, counts, out)
        return out

    def rank(self, tenant: str, state: dict, scorer: Any) -> Ranked:
        """One user's top-K now, from `state`, published nowhere (`GET /recommendations/{user}?fresh=1`).
        Not metered: no batch's cost event counts it."""
        candidates, scores = self._score_call([(tenant, state)], scorer, BatchMeter(device="cpu"), Counter())
        names, top_scores, top_items, k = self._top_k(candidates, scores, scorer)
        return Ranked(*self._row(names[:k], top_scores[0], top_items[0]))

    def _top_k(self, candidates: np.ndarray, scores: np.ndarray, scorer: Any
               ) -> tuple[list[str], list[list[float]], list[list[int]], int]:
        """Top-K per row (padding never picked): every row's K names in one list, each row's
        scores and item codes, and K. The (B, K) picks leave numpy once, as lists; ids are
        looked up for the whole batch in one call."""
        scores = np.where(candidates > 0, scores, -np.inf)
        k = min(self.settings.top_k, scores.shape[1])
        top = np.argsort(-scores, axis=1)[:, :k]
        top_items = np.take_along_axis(candidates, top, axis=1)
        names = scorer.item_ids(top_items)
        top_scores = np.round(np.take_along_axis(scores, top, axis=1).astype(np.float64), 5).tolist()
        return names, top_scores, top_items.tolist(), k

    @staticmethod
    def _row(names: list[str], scores: list[float], items: list[int]) -> tuple[list[str], list[float]]:
        """A row's names and scores without padding (fewer candidates than K: sorted in at -inf)."""
        if 0 in items:
            picks = [c for c, i in enumerate(items) if i > 0]
            return [names[c] for c in picks], [scores[c] for c in picks]
        return names, scores

    def _score_rows(self, rows: list[tuple[str, dict]], scorer: Any, meter: BatchMeter, counts: Counter
                    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Candidates and scores of rows (tenant, state), and the rows that failed alone
        (row -> detail; their candidates are 0)."""
        candidates, scores, failed = self._bisect(rows, scorer, meter, counts)
        if len(failed) == len(rows):
            try:
                scorer.check()
            except Exception as exc:
                raise SystemicFailure(f"scoring with {scorer.version} fails even on its test row: "
                                      f"{failure(exc)}") from exc
        return candidates, scores, failed

    def _bisect(self, rows: list[tuple[str, dict]], scorer: Any, meter: BatchMeter, counts: Counter
                ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        try:
            return (*self._score_call(rows, scorer, meter, counts), {})
        except Exception as exc:
            if len(rows) == 1:
                n = self.settings.candidates
                return np.zeros((1, n), dtype=np.int64), np.zeros((1, n), dtype=np.float32), {0: failure(exc)}
        mid = len(rows) // 2
        left, right = self._bisect(rows[:mid], scorer, meter, counts), self._bisect(rows[mid:], scorer, meter, counts)
        failed = {**left[2], **{mid + row: detail for row, detail in right[2].items()}}
        return np.vstack([left[0], right[0]]), np.vstack([left[1], right[1]]), failed

    def _score_call(self, rows: list[tuple[str, dict]], scorer: Any, meter: BatchMeter, counts: Counter
                    ) -> tuple[np.ndarray, np.ndarray]:
        inputs: Inputs = self.inputs.build(rows, self.index_of, scorer)
        used = DeviceUsage()
        try:
            scores = scorer.score(inputs.histories, inputs.candidates, inputs.terms, usage=used)
        finally:
            meter.device_seconds += used.device_seconds
            meter.scoring_cpu_seconds += used.cpu_seconds
        for code, count in enumerate(inputs.sources):
            if count:
                counts[f"candidate:{SOURCES[code]}"] += count
        return inputs.candidates, scores

    def _publish(self, published: list[tuple[int, list[Trigger]]], scorer: Any, candidates: np.ndarray,
                 scores: np.ndarray, meter: BatchMeter, groups: dict, counts: Counter, out: Scored) -> None:
        """Top-K per row -> one recommendation per row, answering its triggers."""
        names, top_scores, top_items, k = self._top_k(candidates, scores, scorer)
        arm = self.arm_of(scorer)
        bytes_out = sent = 0
        for row, triggers in published:
            event = triggers[-1].event                  # the latest: the state the row reflects
            # Two topics: a later event can carry an earlier timestamp.
            produced_at = min([t.produced_at for t in triggers]) if len(triggers) > 1 else triggers[0].produced_at
            row_names, row_scores = self._row(names[row * k:(row + 1) * k], top_scores[row], top_items[row])
            latency_us = int((time.time() - produced_at) * 1e6)
            try:
                value = _encode({"user_id": event.user_id,
                                 "items": row_names,
                                 "scores": row_scores,
                                 "model_version": scorer.version, "arm": arm, "trigger_event_id": event.event_id,
                                 "trigger_ts": event.ts,  # event time: click attribution windows start here
                                 "triggers": len(triggers),
                                 "latency_ms": latency_us / 1000, "ts": time.time(), "tenant": event.tenant})
                key = event.user_id.encode()
            except Exception as exc:   # this recommendation alone
                detail = failure(exc)
                out.failed += [(t, "publish_failed", detail) for t in triggers]
                continue
            bytes_out += len(value)
            sent += 1
            out.recommendations.append((key, value))
            out.latest[triggers[-1].key] = value
            group = groups[(event.tenant, scorer.version, event.kind)]   # group_key()
            group.recommendations += 1
            group.latencies_us.append(latency_us)
        counts["recommendations"] += sent
        meter.bytes_out += bytes_out
