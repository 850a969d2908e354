"""`reckon chaos`: the long-form fault suite on the embedded stack.

Each scenario reports events sent, recommendations (total, and the events they answer: one
per user per batch answers that user's events in the batch), dead letters, cost rows (total
and distinct) and checks its invariants:
- kill9:      kill -9 the worker mid-replay, restart it on the same data dir; nothing lost,
              no cost row doubled.
- broker:     restart the embedded broker (memory only): the worker notices, says so, exits.
- fuzz:       N fuzzed events (random bytes and JSON, bench/hostile.py) through a real worker;
              every event accounted for.
- poison:     hostile events mixed into normal traffic, and hostile messages on the sink's
              topics, through a live worker and its sink (bench/poison.py).
- clickhouse: ClickHouse cannot write while a replay runs, then can again: every valid event
              is answered by exactly one recommendation, and after the restore the cost rows cover
              every cost event on the topic exactly once; reports the downtime, the time to
              catch up after the restore and how many events were scored meanwhile. Short
              form: tests/bench/test_chaos.py.

What the clickhouse scenario simulates, exactly: nothing in Reckon is mocked. The worker's
embedded ClickHouse (chdb, in the worker process, through streams/clickhouse/client.py and the
real sink) has its store directory remounted read-only in place (a bind mount of the
directory onto itself, remounted `ro`; root ignores file modes but not a read-only mount),
so the engine's own inserts fail with "Read-only file system" while reads still work, as
when a server's data disk goes read-only or fills up; then the mount is removed. This needs
CAP_SYS_ADMIN (root on the project's machines); without it the scenario says so and fails.
It is not a dead server: an embedded store cannot be unreachable while its owner runs,
and a server's connection errors (ClickHouseUnavailable, retried with a short backoff) are
covered against the sink by tests/streams/sink/test_consumer.py. A storage error is a plain
ClickHouseError, on which the sink stalls (offsets uncommitted) and retries every
STALL_BACKOFF_S (streams/sink/consumer.py): that backoff bounds the catch-up time reported.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Self

from aiokafka import AIOKafkaConsumer, TopicPartition

from reckon.bench.hostile import fuzz_values
from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
from reckon.streams.traffic.generator import Record, TrafficGenerator
from reckon.streams.traffic.replay import produce, produce_in_background
from reckon.streams.worker.stack import WorkerProcess, start_worker

# Cost rows from cost events (the sink's own ClickHouse storage rows apart: no event carries them).
READ_COSTS = """
import json, sys
from reckon.streams.clickhouse.client import connect
ch = connect(sys.argv[1])
n, distinct = ch.query("SELECT count(), uniqExact(event_id) FROM cost_events "
                       "WHERE NOT startsWith(event_type, 'clickhouse:')")[0]
print(json.dumps({"cost_rows": n, "cost_rows_distinct": distinct}))
"""

READ_COST_BATCHES = """
import json, sys
from reckon.streams.clickhouse.client import connect
ch = connect(sys.argv[1])
n, distinct = ch.query("SELECT count(), uniqExact(event_id) FROM cost_events "
                       "WHERE NOT startsWith(event_type, 'clickhouse:')")[0]
batches = [r[0] for r in ch.query("SELECT DISTINCT batch_id FROM cost_events "
                                  "WHERE NOT startsWith(event_type, 'clickhouse:')")]
storage, storage_distinct = ch.query("SELECT count(), uniqExact(event_id) FROM cost_events "
                                     "WHERE startsWith(event_type, 'clickhouse:')")[0]
print(json.dumps({"cost_rows": n, "cost_rows_distinct": distinct, "batch_ids": batches,
                  "storage_rows": storage, "storage_rows_distinct": storage_distinct}))
"""

# The clickhouse scenario's outage: longer than the sink's stall backoff (30 s), so a retry
# during the outage fails too before the one after the restore succeeds.
DOWN_S = 35.0


def _worker(bootstrap: str, registry: Path, data: Path, name: str) -> WorkerProcess:
    return start_worker(bootstrap, registry, data, name, log_name=f"{name}-{time.time():.0f}")


async def _read_all(bootstrap: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning()
        out: list = []
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500)
            got = [m for msgs in batch.values() for m in msgs]
            out += got
            idle = 0 if got else idle + 1
        return out
    finally:
        await consumer.stop()


def _wait_consumed(worker: WorkerProcess, n: int, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = worker.stats() or {}
        if stats.get("consumed", 0) >= n and stats.get("cost_events_sunk", 0) >= stats.get("cost_events_sent", 0):
            return stats
        time.sleep(0.5)
    raise TimeoutError(f"worker consumed {stats.get('consumed')} of {n}")


def _costs(dsn_dir: Path, script: str = READ_COSTS) -> dict:
    out = subprocess.run([sys.executable, "-c", script, f"chdb://{dsn_dir}"], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def unanswered_users(recs: list[dict], events: list[dict]) -> set[str]:
    """Users with a valid event no recommendation answers. A recommendation answers its user's
    triggering events of one batch (`triggers` of them) and names the latest; so every event of
    a user is answered when the triggers counted over the user's distinct recommendations cover
    them and every trigger is one of the user's events (a redelivered recommendation repeats its
    trigger and is counted once)."""
    ids: dict[str, set[str]] = {}
    for event in events:
        ids.setdefault(event["user_id"], set()).add(event["event_id"])
    answered: Counter = Counter()
    for rec in {r["trigger_event_id"]: r for r in recs}.values():
        if rec["trigger_event_id"] in ids.get(rec["user_id"], ()):
            answered[rec["user_id"]] += rec["triggers"]
    return {user for user, mine in ids.items() if answered[user] < len(mine)}


def _report(name: str, sent: int, valid: list[dict], bootstrap: str, extra: dict) -> dict:
    recs = [json.loads(m.value) for m in asyncio.run(_read_all(bootstrap, "recommendations"))]
    dlq = asyncio.run(_read_all(bootstrap, "events-dlq"))
    distinct = {r["trigger_event_id"]: r for r in recs}
    lost = len(unanswered_users(recs, valid))
    result = {"scenario": name, "events_sent": sent, "recommendations": len(recs),
              "answered_events": sum(r["triggers"] for r in distinct.values()), "users_unanswered": lost,
              "redelivered": len(recs) - len(distinct), "dead_letters": len(dlq), **extra}
    result["ok"] = lost == 0 and extra.get("cost_rows") == extra.get("cost_rows_distinct") and extra.get("ok", True)
    return result


def kill9(registry: Path, workdir: Path, events: int) -> dict:
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        create_topics(broker.bootstrap_servers, 4)
        records = list(TrafficGenerator(seed=31, bad_fraction=0.02).records(events))
        data = workdir / "kill9"
        worker = _worker(broker.bootstrap_servers, registry, data, "w")
        sender = produce_in_background(broker.bootstrap_servers, records, rate=max(200, events / 20))
        before = _until_consumed(worker, events // 2)   # mid-replay, offsets committed for some
        worker.kill()
        worker = _worker(broker.bootstrap_servers, registry, data, "w")
        sender.join()
        stats = _wait_consumed(worker, 1)   # the restarted worker counts only what it re-read
        time.sleep(5)
        worker.stop()
        valid = [json.loads(r.value) for r in records if r.valid]
        return _report("kill9", len(records), valid, broker.bootstrap_servers,
                       {**_costs(data / "clickhouse"), "consumed_before_kill": before,
                        "restarted_consumed": stats.get("consumed")})


def _until_consumed(worker: WorkerProcess, n: int, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        consumed = (worker.stats() or {}).get("consumed", 0)
        if consumed >= n:
            return consumed
        time.sleep(0.1)
    raise TimeoutError(f"worker consumed fewer than {n} events in {timeout_s:.0f}s")


def broker_restart(registry: Path, workdir: Path, events: int) -> dict:
    broker = EmbeddedBroker(log_path=workdir / "broker-a.log").start()
    create_topics(broker.bootstrap_servers, 4)
    worker = _worker(broker.bootstrap_servers, registry, workdir / "broker", "w")
    asyncio.run(produce(broker.bootstrap_servers, TrafficGenerator(seed=32).records(events)))
    _wait_consumed(worker, events)
    time.sleep(6)
    started = time.monotonic()
    broker.stop()
    again = EmbeddedBroker(port=broker.port, log_path=workdir / "broker-b.log").start()
    try:
        create_topics(again.bootstrap_servers, 4)
        while worker.proc.poll() is None and time.monotonic() - started < 120:
            time.sleep(0.5)
        detected = worker.proc.poll() is not None
        said = "lost its data" in worker.log_path.read_text(errors="replace")
        if not detected:
            worker.stop()
        return {"scenario": "broker", "events_sent": events, "detected": detected, "explained": said,
                "detect_seconds": round(time.monotonic() - started, 1), "ok": detected and said}
    finally:
        again.stop()


def fuzz(registry: Path, workdir: Path, events: int) -> dict:
    records = [Record(t, b"fuzz", value, False)
               for t, value in zip(["clicks", "searches"] * (events // 2 + 1), fuzz_values(seed=18, n=events))]
    with EmbeddedBroker(log_path=workdir / "broker-fuzz.log") as broker:
        create_topics(broker.bootstrap_servers, 4)
        worker = _worker(broker.bootstrap_servers, registry, workdir / "fuzz", "w")
        asyncio.run(produce(broker.bootstrap_servers, records))
        stats = _wait_consumed(worker, events)
        worker.stop()
        recs = [json.loads(m.value) for m in asyncio.run(_read_all(broker.bootstrap_servers, "recommendations"))]
        invalid = sum(v for k, v in stats.items() if k.startswith("invalid:"))
        accounted = stats.get("valid", 0) + stats.get("duplicate", 0) + invalid
        answered = sum(r["triggers"] for r in recs)
        return {"scenario": "fuzz", "events_sent": events, "consumed": stats.get("consumed"),
                "valid": stats.get("valid", 0), "dead_letters": invalid,
                "recommendations": stats.get("recommendations", 0), "answered_events": answered,
                "ok": accounted == events and len(recs) == stats.get("recommendations", 0)
                and answered == stats.get("valid", 0)}


class ReadOnlyMount:
    """`path` remounted read-only in place for a while: `down()` bind-mounts the directory
    onto itself and remounts that `ro`; `up()` unmounts it (lazily if a file is held open
    through it), so the very same directory is writable again. A context manager: leaving
    the block always restores the directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.mounted = False

    @staticmethod
    def _run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, check=False, capture_output=True, text=True)

    def down(self) -> None:
        bound = self._run("mount", "--bind", str(self.path), str(self.path))
        if bound.returncode != 0:
            raise PermissionError(f"cannot bind-mount {self.path}: {bound.stderr.strip()}")
        self.mounted = True
        ro = self._run("mount", "-o", "remount,bind,ro", str(self.path))
        if ro.returncode != 0:
            self.up()
            raise PermissionError(f"cannot remount {self.path} read-only: {ro.stderr.strip()}")

    def up(self) -> None:
        if not self.mounted:
            return
        if self._run("umount", str(self.path)).returncode != 0:
            out = self._run("umount", "-l", str(self.path))
            if out.returncode != 0:
                raise OSError(f"cannot unmount {self.path}: {out.stderr.strip()}")
        self.mounted = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.up()


def read_only_unsupported(workdir: Path) -> str | None:
    """Why this machine cannot remount a directory read-only (None when it can)."""
    probe = Path(tempfile.mkdtemp(prefix="ro-probe-", dir=workdir))
    try:
        with ReadOnlyMount(probe) as mount:
            mount.down()
            try:
                (probe / "x").write_text("x")
            except OSError:
                return None
            return f"{probe} stayed writable after a read-only remount"
    except (OSError, FileNotFoundError) as exc:
        return f"the clickhouse scenario needs CAP_SYS_ADMIN (root) to remount the store read-only: {exc}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _poll(worker: WorkerProcess, until, timeout_s: float, what: str) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = worker.stats() or {}
        if until(stats):
            return stats
        time.sleep(0.2)
    raise TimeoutError(f"{what} within {timeout_s:.0f}s; worker log: {worker.log_path}")


def _failed_writes(stats: dict) -> int:
    return stats.get("sink_errors", 0) + stats.get("sink_retries", 0)


def clickhouse_outage(registry: Path, workdir: Path, events: int, down_s: float = DOWN_S) -> dict:
    reason = read_only_unsupported(workdir)
    if reason:
        return {"scenario": "clickhouse", "events_sent": 0, "error": reason, "ok": False}
    with EmbeddedBroker(log_path=workdir / "broker-clickhouse.log") as broker:
        create_topics(broker.bootstrap_servers, 4)
        records = list(TrafficGenerator(seed=33, bad_fraction=0.02).records(events))
        data = workdir / "clickhouse"
        worker = _worker(broker.bootstrap_servers, registry, data, "w")
        # The replay spans the outage (the worker joins its group and stores its first cost
        # rows ~10 s after it starts): the scorer has work while ClickHouse cannot write.
        sender = produce_in_background(broker.bootstrap_servers, records,
                                       rate=max(50.0, events / (down_s + 15)))
        try:
            with ReadOnlyMount(data / "clickhouse") as store:
                _poll(worker, lambda s: s.get("cost_events_sunk", 0) > 0, 60, "no cost event stored")
                store.down()
                went_down = time.monotonic()
                at_down = worker.stats() or {}
                # The real insert must fail before the outage counts; then keep it down.
                first = _poll(worker, lambda s: _failed_writes(s) > _failed_writes(at_down), 60,
                              "the sink never hit the read-only store")
                first_failure_s = time.monotonic() - went_down
                time.sleep(max(0.0, down_s - (time.monotonic() - went_down)))
                at_up = worker.stats() or first
                store.up()
                came_up = time.monotonic()
            _poll(worker, lambda s: s.get("cost_events_sunk", 0) >= at_up.get("cost_events_sent", 0),
                           180, "the sink did not catch up")
            catch_up_s = time.monotonic() - came_up
            sender.join()
            stats = _wait_consumed(worker, len(records))
        finally:
            sender.join()
            worker.stop()
        cost_events = [json.loads(m.value) for m in asyncio.run(_read_all(broker.bootstrap_servers, "cost-events"))]
        stored = _costs(data / "clickhouse", READ_COST_BATCHES)
        on_topic = {e["event_id"] for e in cost_events}
        batches = set(stored.pop("batch_ids"))
        expected_rows = sum(len(e["lines"]) for e in cost_events)
        valid = [json.loads(r.value) for r in records if r.valid]
        extra = {
            **stored, "cost_rows_expected": expected_rows, "cost_events_sent": stats.get("cost_events_sent"),
            "cost_events_on_topic": len(on_topic), "cost_events_missing": len(on_topic - batches),
            "cost_events_unknown": len(batches - on_topic),
            "downtime_s": round(came_up - went_down, 1), "first_failure_s": round(first_failure_s, 1),
            "catch_up_s": round(catch_up_s, 1),
            "sink_failed_writes": _failed_writes(at_up) - _failed_writes(at_down),
            "scored_while_down": at_up.get("consumed", 0) - at_down.get("consumed", 0),
            "backlog_at_restore": at_up.get("cost_events_sent", 0) - at_up.get("cost_events_sunk", 0),
            "sunk_while_down": at_up.get("cost_events_sunk", 0) - at_down.get("cost_events_sunk", 0),
        }
        extra["ok"] = (extra["cost_rows"] == expected_rows and batches == on_topic
                       and extra["storage_rows"] == extra["storage_rows_distinct"]
                       and len(on_topic) >= stats.get("cost_events_sent", 0)
                       and extra["sink_failed_writes"] > 0)
        result = _report("clickhouse", len(records), valid, broker.bootstrap_servers, extra)
        result["ok"] = result["ok"] and result["answered_events"] == len(valid) and result["redelivered"] == 0
        return result


SCENARIOS = {"kill9": kill9, "broker": broker_restart, "fuzz": fuzz, "clickhouse": clickhouse_outage}
