"""Model routing meets bad versions: refused, logged once, counted; the working one serves."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from reckon.streams.core.errors import ReckonError
from reckon.streams.core.settings import Settings
from reckon.streams.pipeline.routing import ModelRuntime

from ..conftest import registry_with_copy


def _point(registry_path: Path, version: str) -> None:
    """Move CURRENT as an older promote (no checks) or a hand edit would."""
    (registry_path / "CURRENT").write_text(version + "\n")


def _runtime(path: Path) -> ModelRuntime:
    return ModelRuntime(Settings(worker_name="t", model_registry=path, device="cpu"))


@pytest.mark.parametrize("damage", ["model.int8.onnx", "item_emb.npy", "item_ids.json"])
def test_a_promoted_version_with_a_bad_file_is_refused_once_and_the_current_one_serves(
        registry_dir, tmp_path, caplog, damage: str) -> None:
    path = tmp_path / "registry"
    registry, v1 = registry_with_copy(registry_dir, path, "v2-bad")
    runtime = _runtime(path)
    (path / "v2-bad" / damage).write_bytes(b"corrupted")          # after its checksum was recorded
    _point(path, "v2-bad")
    with caplog.at_level(logging.ERROR, logger="reckon.streams.pipeline.routing"):
        assert runtime.load_promoted() is None
        assert runtime.load_promoted() is None                   # polled again: not retried, not logged again
    assert runtime.current_version == v1 and set(runtime.rejected) == {"v2-bad"}
    assert "does not match manifest" in runtime.rejected["v2-bad"]
    assert len(caplog.records) == 1 and "v2-bad" in caplog.records[0].getMessage()


def test_a_version_that_loads_but_cannot_score_is_refused(registry_dir, tmp_path) -> None:
    path = tmp_path / "registry"
    registry, v1 = registry_with_copy(registry_dir, path, "v2-empty")
    staging = registry.staging_dir()       # consistent checksums and shapes, no item to score
    for f in (path / "v2-empty").iterdir():
        if f.name == "item_ids.json":
            (staging / f.name).write_text("[]")
        elif f.name == "item_emb.npy":
            np.save(staging / f.name, np.load(f)[:1])                # the padding row alone
        elif f.name != "manifest.json":
            (staging / f.name).write_bytes(f.read_bytes())
    registry.add(staging, {**registry.get(v1).manifest, "version": "v3-empty"})
    runtime = _runtime(path)
    _point(path, "v3-empty")
    assert runtime.load_promoted() is None and "no items" in runtime.rejected["v3-empty"]


def test_a_worker_starting_on_a_bad_promoted_version_serves_the_newest_good_one(registry_dir, tmp_path) -> None:
    path = tmp_path / "registry"
    registry, v1 = registry_with_copy(registry_dir, path, "v2-bad")
    (path / "v2-bad" / "model.int8.onnx").write_bytes(b"corrupted")
    _point(path, "v2-bad")
    runtime = _runtime(path)
    assert runtime.current_version == v1 and set(runtime.rejected) == {"v2-bad"}
    (path / v1 / "model.int8.onnx").write_bytes(b"corrupted too")
    with pytest.raises(ReckonError, match="no version .* can be served"):
        _runtime(path)


def test_a_corrupt_manifest_beside_a_bad_promoted_version_does_not_stop_the_fallback(registry_dir, tmp_path) -> None:
    path = tmp_path / "registry"
    registry, v1 = registry_with_copy(registry_dir, path, "v2-bad")
    (path / "v2-bad" / "model.int8.onnx").write_bytes(b"corrupted")
    (path / "v0-torn").mkdir()
    (path / "v0-torn" / "manifest.json").write_text('{"version": ')      # a copy cut short
    _point(path, "v2-bad")
    runtime = _runtime(path)
    assert runtime.current_version == v1
    assert set(runtime.rejected) == {"v2-bad", "v0-torn"} and "invalid JSON" in runtime.rejected["v0-torn"]
