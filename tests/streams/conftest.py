"""Fixtures for the event path: a worker process runner and registry copies."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reckon.models.core.registry import Registry
from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
from reckon.streams.worker.stack import WorkerProcess, start_worker


def registry_with_copy(source: Path, target: Path, version: str) -> tuple[Registry, str]:
    """A copy of `source` plus a second version with the promoted one's artifacts;
    returns the registry and the id of the (still) promoted version."""
    shutil.copytree(source, target)
    registry = Registry(target)
    current = registry.current()
    staging = registry.staging_dir()
    for f in current.path.iterdir():
        if f.is_file() and f.name != "manifest.json":
            shutil.copy(f, staging / f.name)
    registry.add(staging, {**current.manifest, "version": version})
    return registry, current.version


@pytest.fixture(scope="session")
def scorer(registry_dir: Path):
    from reckon.models.serving.scorer import Scorer

    return Scorer.load(Registry(registry_dir).current(), device="cpu")


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own: topic counts and consumer groups start at zero."""
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as b:
        create_topics(b.bootstrap_servers, partitions=4)
        yield b


class Workers:
    """Start `reckon worker` processes against a broker; stops them all at teardown."""

    def __init__(self, broker: EmbeddedBroker, registry: Path, root: Path) -> None:
        self.broker, self.registry, self.root = broker, registry, root
        self.started: list[WorkerProcess] = []

    def start(self, name: str, data_dir: Path | None = None, **env: str) -> WorkerProcess:
        worker = start_worker(self.broker.bootstrap_servers, self.registry, data_dir or self.root / name,
                              name, **{"RECKON_DEVICE": "cpu", "RECKON_BATCH_WAIT_MS": "20", **env})
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.proc.poll() is None:
                worker.stop()


@pytest.fixture
def workers(fresh_broker: EmbeddedBroker, registry_dir: Path, tmp_path: Path) -> Iterator[Workers]:
    ws = Workers(fresh_broker, registry_dir, tmp_path)
    yield ws
    ws.stop_all()


def wait_for(predicate, timeout_s: float = 90, what: str = "condition", poll_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
