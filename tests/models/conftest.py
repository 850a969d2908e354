"""Fixtures for tests/models: a tiny, learnable synthetic event stream."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

WORDS = ["red", "blue", "green", "black", "white", "gold", "pink", "grey"]


def generate_events(users: int = 60, items_per_topic: int = 12, clicks_per_user: int = 14,
                    seed: int = 7, start_ts: float = 1_790_000_000.0) -> list[dict[str, Any]]:
    """Clicks that walk through a topic's items in order (so the next item is
    predictable), with a search naming the topic whenever a user switches topic."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    n = 0
    for u in range(users):
        ts = start_ts + u
        topic = rng.randrange(len(WORDS))
        pos = rng.randrange(items_per_topic)
        for c in range(clicks_per_user):
            if c == 0 or rng.random() < 0.15:
                topic = rng.randrange(len(WORDS))
                pos = rng.randrange(items_per_topic)
                n += 1
                events.append({"event_id": f"e{n}", "user_id": f"u{u}", "query": f"{WORDS[topic]} shoes",
                               "ts": ts, "session_id": f"s{u}", "tenant": "acme"})
                ts += 1.0
            n += 1
            events.append({"event_id": f"e{n}", "user_id": f"u{u}", "item_id": f"{WORDS[topic]}-{pos}",
                           "action": rng.choice(["view", "view", "cart", "purchase"]), "ts": ts,
                           "session_id": f"s{u}", "price": 9.5, "tenant": "acme"})
            ts += 1.0
            pos = (pos + 1) % items_per_topic
    rng.shuffle(events)  # arrival order differs from ts order, as on a real stream
    return events


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a loaded 2-core machine
    OpenMP spin-waiting made one 1 s test take 49 s; restore the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_events() -> Callable[..., list[dict[str, Any]]]:
    """The generator itself, for tests that need other sizes or seeds."""
    return generate_events


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return generate_events()


@pytest.fixture
def events_file(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_data():
    """Generated events loaded with query conditioning (shared, read-only)."""
    from reckon.models.training.data import load_events

    return load_events(generate_events(users=120), query_buckets=64, query_terms=4)


@pytest.fixture(scope="session")
def tiny_model(tiny_data):
    """A small SASRec trained for a few epochs on the generated events (~2 s)."""
    from reckon.models.training.config import ModelConfig, TrainConfig
    from reckon.models.training.train import train

    cfg = ModelConfig(num_items=tiny_data.num_items, max_len=12, hidden=32, blocks=2, heads=2, dropout=0.1,
                      query_buckets=64, query_terms=4)
    return train(tiny_data, cfg, TrainConfig(epochs=6, batch_size=32, lr=3e-3, patience=6), progress=False).model


@pytest.fixture(scope="session")
def tiny_version(tmp_path_factory, tiny_model, tiny_data):
    """tiny_model exported (fp32/int8/fp16), registered and promoted in a registry."""
    from reckon.models.core.registry import Registry
    from reckon.models.training.publish import publish

    reg = Registry(tmp_path_factory.mktemp("registry"))
    return publish(tiny_model, reg, tiny_data.item_ids, tiny_data.description, eval_set=tiny_data.test,
                   quality_limit=100, measure_seconds=0.05, promote=True)
