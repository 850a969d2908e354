"""`reckon demo`: the whole path on one machine, no Docker.

broker (Tansu, memory only) -> model (trained for seconds if none) -> worker (Faust,
child process, owns the chdb store) -> replay -> wait until every event is processed
and every cost event is in ClickHouse -> stop the worker -> read costs back.
With --drift the traffic drifts halfway; with --retrain the worker retrains from what it
stored and more traffic follows (streams/cli/demo_loop.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from reckon.streams.cli import demo_loop
from reckon.streams.core.errors import ReckonError
from reckon.streams.core.settings import Settings
from reckon.streams.costs import figures as F
from reckon.streams.kafka.broker import free_port
from reckon.streams.reports.format import usd
from reckon.streams.traffic.generator import Drift, Record, TrafficGenerator
from reckon.streams.traffic.replay import produce
from reckon.streams.worker.stack import WorkerProcess, demo_model, kafka

REPLAY_CHUNK = 200        # events per send: about 40 sessions, each scored before the next chunk


def _read_examples(bootstrap: str, limit: int = 3) -> list[dict]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer("recommendations", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, enable_auto_commit=False)
    try:
        out = []
        for message in consumer:
            out.append(json.loads(message.value))
            if len(out) >= limit:
                break
        return out
    finally:
        consumer.close()


def cost_report(dsn: str, attribution_window_s: int) -> dict:
    """The cost report `reckon costs --json` prints for this store (its default window): the
    demo shows the same figures under the same names."""
    from reckon.streams.clickhouse.client import connect, disconnect
    from reckon.streams.reports.report import ReportRequest, build_report

    ch = connect(dsn)
    try:
        report = build_report(ch, ReportRequest(attribution_window_s=attribution_window_s))
        cost_rows = ch.query("SELECT count() FROM cost_events FINAL", tag="demo:rows")[0][0]
    finally:
        disconnect(dsn)
    return {**report, "cost_rows": int(cost_rows)}


def run_demo(settings: Settings, events: int, bad_fraction: float, train_seconds: float,
             console: Console, drift: bool = False, retrain: bool = False) -> dict:
    started = time.perf_counter()
    run_dir = settings.data_dir.resolve() / "demo"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    registry = settings.registry_dir.resolve()
    with console.status("preparing the model"):
        model = demo_model(registry, seconds=train_seconds)
    console.print(f"model {escape(model.version)} from {escape(str(registry))}")
    if retrain:
        registry = demo_loop.run_registry(model, run_dir / "models")
    # Event times end about now (each event is at most 0.05 s after the one before; with --retrain
    # half as many again follow), so the event-time charts (attribution) sit beside the minutes
    # the costs were recorded in, not an hour before them.
    traffic = TrafficGenerator(bad_fraction=bad_fraction, drift=Drift(at=events // 2) if drift else None,
                               start_ts=time.time() - 0.05 * (events + events // 2) - 60)
    dsn = f"chdb://{run_dir / 'clickhouse'}"
    with _interrupts_raise(), kafka(Settings(partitions=settings.partitions), log_path=run_dir / "broker.log") \
            as bootstrap:
        port = free_port()
        env = {"RECKON_BOOTSTRAP_SERVERS": bootstrap, "RECKON_DATA_DIR": str(run_dir),
               "RECKON_CLICKHOUSE_DSN": dsn, "RECKON_WEB_PORT": str(port),
               "RECKON_MODEL_REGISTRY": str(registry), "RECKON_WORKER_NAME": "demo-worker-1",
               **(demo_loop.retrain_env(model.version) if retrain else {})}
        worker = WorkerProcess(env, run_dir / "worker.log", port)
        try:
            with console.status("starting the worker"):
                worker.wait_ready()      # ready: in its consumer group, partitions assigned
            records = list(traffic.records(events))
            sent = _replay(bootstrap, records, worker, Counter(), console)
            stats = _wait_processed(worker, sent, console)
            if retrain:
                demo_loop.wait_logged(worker, sum(r.valid and r.topic == "clicks" for r in records))
                loop = demo_loop.retrain(worker, console)
                # Phase 2 in event time: from the millisecond after phase 1's last event.
                loop["since"] = (round(traffic.ts * 1000) + 1) / 1000
                sent = _replay(bootstrap, list(traffic.records(events // 2)), worker, sent, console)
                stats = _wait_processed(worker, sent, console)
            examples = _read_examples(bootstrap)
        finally:
            code = worker.stop()
        if code not in (0, None):
            console.print(f"[yellow]worker exited with {code}; log {escape(str(worker.log_path))}[/yellow]")
    invalid = sum(v for k, v in sent.items() if k.startswith("invalid:"))
    dlq = sum(v for k, v in stats.items() if k.startswith("invalid:"))
    # with --retrain: the frozen and the retrained version side by side, at the top level
    versions = _loop_summary(loop, *demo_loop.version_figures(dsn, [loop["parent"], loop["version"]],
                                                              loop["since"], settings.attribution_window_s)) if retrain else {}
    return {
        "events_sent": sent["sent"], "events_valid": sent["valid"], "events_invalid": invalid,
        "events_processed": stats.get("consumed", 0), "duplicates": stats.get("duplicate", 0),
        "recommendations": stats.get("recommendations", 0), "dlq": dlq,
        "dlq_by_reason": {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("invalid:")},
        "model_version": stats.get("model_version"), "device": stats.get("device"),
        "store": dsn, "costs": cost_report(dsn, settings.attribution_window_s), **versions, "examples": examples,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """Ctrl-C raises where the demo is, asyncio.run's sends included: its own handler cancels the
    sending task, and an interrupt caught on the way was lost (the demo then waited 30 s for a
    worker it was stopping and said it died). The worker is stopped on the way out."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _loop_summary(loop: dict, figures: dict[str, dict], arms: list[dict]) -> dict:
    """The frozen and the retrained version side by side: the same metric on the same latest
    slice, each one's unit costs and online quality from this run's ClickHouse, and the
    online quality per arm of the traffic after the retrain."""
    return {"quality_metric": loop["metric"], "quality_examples": loop["examples"],
            "frozen_quality": loop["current_quality"], "retrained_quality": loop["candidate_quality"],
            "promoted": loop["promoted"], "promotion_reason": loop["reason"],
            "frozen": {"version": loop["parent"], **figures[loop["parent"]]},
            "retrained": {"version": loop["version"], "new_items": loop["new_items"],
                          "training_cost_usd": loop["training_cost"]["cost_usd"],
                          "training_cpu_seconds": loop["training_cost"]["cpu_seconds"], **figures[loop["version"]]},
            "after_retrain_by_arm": arms}


def _replay(bootstrap: str, records: list[Record], worker: WorkerProcess, sent: Counter, console: Console,
            chunk: int = REPLAY_CHUNK) -> Counter:
    """Send `records` a chunk at a time, each consumed before the next goes out. Live, a
    user's session spans minutes, so its clicks reach the worker in different batches and
    each batch's recommendation can be credited with the clicks after it; sent in one
    burst, a whole session would land in one batch and earn one recommendation after all
    of its clicks, leaving nothing to attribute."""
    sent = Counter(sent)
    with console.status(f"replaying {len(records)} events") as status:
        for start in range(0, len(records), chunk):
            sent += asyncio.run(produce(bootstrap, records[start:start + chunk]))
            status.update(f"replaying: {min(start + chunk, len(records))}/{len(records)} events sent")
            deadline = time.monotonic() + 120
            while (worker.stats() or {}).get("consumed", 0) < sent["sent"]:
                if worker.proc.poll() is not None:
                    raise ReckonError(f"worker died (code {worker.proc.returncode}):\n{worker.tail()}")
                if time.monotonic() > deadline:
                    raise ReckonError(f"the worker consumed {(worker.stats() or {}).get('consumed', 0)} of "
                                      f"{sent['sent']} events sent in 120 s; log {worker.log_path}")
                time.sleep(0.05)
    return sent


def _wait_processed(worker: WorkerProcess, sent: Counter, console: Console, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    stats: dict = {}
    with console.status("waiting for the worker") as status:
        while time.monotonic() < deadline:
            stats = worker.stats() or stats
            done = stats.get("consumed", 0) >= sent["sent"]
            sunk = stats.get("cost_events_sunk", 0) >= stats.get("cost_events_sent", 0)
            status.update(f"processed {stats.get('consumed', 0)}/{sent['sent']}, "
                          f"cost events {stats.get('cost_events_sunk', 0)}/{stats.get('cost_events_sent', 0)}")
            if done and sunk:
                return stats
            if worker.proc.poll() is not None:
                raise ReckonError(f"worker died (code {worker.proc.returncode}):\n{worker.tail()}")
            time.sleep(0.25)
    raise ReckonError(f"worker processed {stats.get('consumed', 0)} of {sent['sent']} events "
                      f"in {timeout_s:.0f}s; log {worker.log_path}")


def print_summary(summary: dict, console: Console) -> None:
    from reckon.streams.reports.text import render_text

    table = Table(title="Reckon demo", show_header=False)
    for key in ("events_sent", "events_processed", "events_invalid", "dlq", "recommendations",
                "model_version", "device", "elapsed_s"):
        table.add_row(key.replace("_", " "), Text(str(summary.get(key))))
    console.print(table)
    if "frozen_quality" in summary:
        metric = summary["quality_metric"]
        for name in ("frozen", "retrained"):
            v = summary[name]
            console.print(f"{name} {escape(v['version'])}: {metric} {summary[f'{name}_quality']:.4f} on the latest slice "
                          f"({summary['quality_examples']} examples); {v['recommendations']} recommendations, "
                          f"{F.WORKLOAD_PER_1K.label} {usd(v[F.WORKLOAD_PER_1K.key])}, "
                          f"{F.ATTRIBUTED_PER_1K.label} {usd(v[F.ATTRIBUTED_PER_1K.key])}, "
                          f"attributed per click {usd(v['attributed_cost_per_click_usd'])}"
                          + (f"; training cost ${v['training_cost_usd']}" if name == "retrained" else ""))
        console.print(("promoted: " if summary["promoted"] else "not promoted: ") + escape(summary["promotion_reason"]))
        for arm in summary["after_retrain_by_arm"]:
            low, high = arm["attributed_ctr_ci95"]
            console.print(f"after the retrain, {escape(arm['arm'])} arm ({escape(arm['model_version'])}): "
                          "attributed CTR "
                          f"{arm['attributed_ctr']:.2%} [{low:.2%}, {high:.2%}] of {arm['recommendations']}")
    for rec in summary["examples"]:
        shown = ", ".join(rec["items"][:5]) + (f" (first 5 of {len(rec['items'])})" if len(rec["items"]) > 5 else "")
        console.print(f"user {escape(rec['user_id'])} -> {escape(shown)}; answers {rec['triggers']} event(s), "
                      f"{rec['latency_ms']:,.0f} ms from the earliest one's broker timestamp to publication")
    console.print()
    render_text(summary["costs"], console)
    console.print(f"\nThe same report: reckon costs (store {escape(summary['store'])}).\n"
                  "What each figure means: README, \"What the cost figures mean\".")
