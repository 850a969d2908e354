import json
from pathlib import Path

import pytest

from reckon.models.core.errors import ChecksumError, RegistryError, VersionNotFoundError
from reckon.models.core.registry import Registry


def add_version(reg: Registry, version: str, created: str) -> None:
    staging = reg.staging_dir()
    (staging / "model.fp32.onnx").write_bytes(b"onnx-" + version.encode())
    (staging / "item_ids.json").write_text(json.dumps(["a", "b"]))
    reg.add(staging, {"version": version, "created": created, "config": {"max_len": 5}})


def test_add_list_promote(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    assert reg.current() is None and reg.current_id() is None and reg.list() == []
    add_version(reg, "v2", "2026-11-23T10:00:00")
    add_version(reg, "v1", "2026-11-22T10:00:00")
    assert [mv.version for mv in reg.list()] == ["v1", "v2"]  # oldest first
    reg.promote("v2")
    assert reg.current_id() == "v2" and reg.current().version == "v2"
    assert (tmp_path / "reg" / "CURRENT").read_text().strip() == "v2"
    assert not [p for p in (tmp_path / "reg").iterdir() if p.name.startswith(".")]  # no temp files left
    mv = reg.get("v1")
    assert mv.item_ids == ["a", "b"] and mv.variants == ["fp32"]
    assert mv.onnx_path("fp32") == tmp_path / "reg" / "v1" / "model.fp32.onnx"
    assert Registry(tmp_path / "reg").current_id() == "v2"  # a second reader sees the pointer


def test_errors(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    add_version(reg, "v1", "2026-11-23")
    with pytest.raises(VersionNotFoundError, match='"nope"'):
        reg.promote("nope")
    with pytest.raises(VersionNotFoundError):
        reg.get("../v1")
    with pytest.raises(RegistryError, match="no int8 variant"):
        reg.get("v1").onnx_path("int8")
    with pytest.raises(RegistryError, match="Unknown variant"):
        reg.get("v1").onnx_path("bf16")
    with pytest.raises(RegistryError, match="already exists"):
        add_version(reg, "v1", "2026-11-24")


def test_checksums_detect_tampering(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    add_version(reg, "v1", "2026-11-23")
    mv = reg.get("v1")
    mv.verify()
    files = mv.manifest["files"]
    assert files["model.fp32.onnx"]["bytes"] == len(b"onnx-v1") and len(files["model.fp32.onnx"]["sha256"]) == 64
    (tmp_path / "v1" / "model.fp32.onnx").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="does not match"):
        mv.verify(["model.fp32.onnx"])


def test_record_measurement_keeps_artifacts(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    add_version(reg, "v1", "2026-11-23")
    before = reg.get("v1").manifest["files"]
    mv = reg.record_measurement("v1", "cuda:H100", {"fp16": {"device_seconds_per_1k_scores": 0.01}})
    assert mv.manifest["measurements"]["cuda:H100"]["fp16"]["device_seconds_per_1k_scores"] == 0.01
    assert mv.manifest["files"] == before
    mv.verify()


def test_manifest_sections_update_atomically_and_versions_copy(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "reg")
    add_version(reg, "v1", "2026-11-22T10:00:00")
    mv = reg.update_manifest("v1", "retraining", {"promotion": {"promoted": False, "reason": "worse"}})
    assert mv.manifest["retraining"]["promotion"]["reason"] == "worse" and mv.manifest["config"] == {"max_len": 5}
    assert reg.get("v1").manifest["retraining"] == mv.manifest["retraining"]      # the cache sees the new manifest
    mv.verify()                                                                   # artifacts untouched
    with pytest.raises(RegistryError, match="cannot be updated"):
        reg.update_manifest("v1", "files", {})
    other = Registry(tmp_path / "other")
    copy = other.import_version(reg.get("v1"))
    assert copy.version == "v1" and copy.manifest["retraining"] == mv.manifest["retraining"]
    assert copy.manifest["files"] == mv.manifest["files"] and copy.path.parent == tmp_path / "other"
    with pytest.raises(RegistryError, match="already exists"):
        other.import_version(reg.get("v1"))

def test_promote_verifies_every_file_and_the_check_before_moving_the_pointer(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    add_version(reg, "v1", "2026-11-23")
    add_version(reg, "v2", "2026-11-24")
    reg.promote("v1")
    (tmp_path / "v2" / "item_ids.json").write_text('["a", "b", "x"]')   # not the file checksummed
    with pytest.raises(ChecksumError):
        reg.promote("v2")
    assert reg.current_id() == "v1"
    add_version(reg, "v3", "2026-11-25")

    def refuse(mv) -> None:
        raise RegistryError(f"{mv.version} does not load")

    with pytest.raises(RegistryError, match="v3 does not load"):
        reg.promote("v3", check=refuse)
    assert reg.current_id() == "v1"
    reg.promote("v3", check=lambda mv: None)
    assert reg.current_id() == "v3"


def test_a_current_pointer_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    (tmp_path / "CURRENT").write_bytes(b"v\xff1\n")
    with pytest.raises(RegistryError, match=f"^{tmp_path / 'CURRENT'}: not UTF-8 text"):
        reg.current_id()


@pytest.mark.parametrize("files", [{}, None, "no fp32"])
def test_promote_refuses_a_version_with_nothing_to_serve(tmp_path: Path, files) -> None:
    # Its variants come from `files`: with none listed, checksums and test loads pass vacuously.
    reg = Registry(tmp_path)
    add_version(reg, "v1", "2026-11-23")
    reg.promote("v1")
    add_version(reg, "v2", "2026-11-24")
    manifest_path = tmp_path / "v2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if files == "no fp32":
        manifest["files"].pop("model.fp32.onnx")
    elif files is None:
        del manifest["files"]
    else:
        manifest["files"] = files
    manifest_path.write_text(json.dumps(manifest))
    problem = "has no fp32 variant" if files == "no fp32" else "lists no files"
    with pytest.raises(RegistryError, match=problem):
        reg.promote("v2", check=lambda mv: None)
    assert reg.current_id() == "v1"


def test_one_corrupt_manifest_does_not_hide_the_other_versions(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    add_version(reg, "v1", "2026-11-23")
    add_version(reg, "v2", "2026-11-24")
    (tmp_path / "v2" / "manifest.json").write_text("{not json")
    versions, unreadable = reg.scan()
    assert [mv.version for mv in versions] == ["v1"]
    assert list(unreadable) == ["v2"] and "invalid JSON" in unreadable["v2"]
    with pytest.raises(RegistryError, match="invalid JSON"):      # list() still says so
        reg.list()
