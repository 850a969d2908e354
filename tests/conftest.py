"""Session fixtures for the real embedded stack: one Tansu broker, one chdb store, and a
small trained model.

chdb opens one store per process, so the whole pytest process shares one session
store; tests isolate themselves by distinct tenants/workers or by their own tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest

from reckon.streams.clickhouse.client import ClickHouse, connect, disconnect
from reckon.streams.clickhouse.migrations import migrate
from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
from reckon.streams.traffic.generator import TrafficGenerator


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        create_topics(b.bootstrap_servers, partitions=4)
        yield b


@pytest.fixture(scope="session")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry")
    from reckon.models.training.bootstrap import ensure_model

    ensure_model(path, islice(TrafficGenerator(seed=5).sessions(), 6000), seconds=8)
    return path


@pytest.fixture(scope="session")
def clickhouse_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb') / 'store'}"


@pytest.fixture(scope="session")
def clickhouse(clickhouse_dsn: str) -> Iterator[ClickHouse]:
    ch = connect(clickhouse_dsn)
    migrate(ch)
    yield ch
    disconnect(clickhouse_dsn)


@pytest.fixture(autouse=True)
def _no_reckon_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their own settings: a developer's RECKON_* variables must not leak in."""
    for name in list(os.environ):
        if name.startswith("RECKON_"):
            monkeypatch.delenv(name)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
