"""Local RocksDB state and unclean shutdowns (streams/kafka/local_state.py).

Unit tests of the marker logic on a tmp dir, then a real worker: a clean stop keeps its
stores; after kill -9 the restart wipes them and restores from the changelog, so a local
write that never reached the changelog is not served.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import faust
import httpx
import pytest

from reckon.streams.kafka import local_state
from reckon.streams.pipeline.state import state_key
from reckon.streams.traffic.generator import TrafficGenerator
from reckon.streams.traffic.replay import produce

from ..conftest import wait_for

WIPE_WARNING = "was not closed cleanly"


def _tables(root: Path) -> Path:
    tabledir = root / "v1" / "tables"
    (tabledir / "user-state-0.db").mkdir(parents=True)
    (tabledir / "user-state-0.db" / "CURRENT").write_text("MANIFEST-000001\n")
    return tabledir


def test_first_start_has_nothing_to_wipe(tmp_path: Path) -> None:
    assert local_state.prepare(tmp_path, tmp_path / "v1" / "tables") is False
    assert not local_state.marker_path(tmp_path).exists()


def test_state_after_a_clean_stop_is_kept_and_the_marker_consumed(tmp_path: Path) -> None:
    tabledir = _tables(tmp_path)
    local_state.mark_clean(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no torn tmp file
    assert local_state.prepare(tmp_path, tabledir) is False
    assert (tabledir / "user-state-0.db" / "CURRENT").is_file()
    assert not local_state.marker_path(tmp_path).exists()      # a crash of this run leaves none


def test_state_without_a_marker_is_wiped_with_a_warning(tmp_path: Path, caplog) -> None:
    tabledir = _tables(tmp_path)
    with caplog.at_level(logging.WARNING, logger="reckon.streams.kafka.local_state"):
        assert local_state.prepare(tmp_path, tabledir) is True
    assert not tabledir.exists()
    assert WIPE_WARNING in caplog.text and "changelog" in caplog.text


def test_install_wipes_before_start_and_marks_only_a_clean_stop(tmp_path: Path) -> None:
    def app(name: str) -> faust.App:
        return faust.App(name, datadir=str(tmp_path / name), store="rocksdb://")

    clean = app("clean")
    tabledir = _tables(Path(clean.conf.datadir))
    assert Path(clean.conf.tabledir) == tabledir
    local_state.install(clean, tmp_path / "clean")
    assert not tabledir.exists()                              # no marker: wiped at install time
    asyncio.run(clean.on_shutdown())                          # what mode's Service.stop runs last
    assert json.loads(local_state.marker_path(tmp_path / "clean").read_text())["pid"] > 0

    crashed = app("crashed")
    local_state.install(crashed, tmp_path / "crashed")
    crashed._crash(RuntimeError("boom"))
    asyncio.run(crashed.on_shutdown())
    assert not local_state.marker_path(tmp_path / "crashed").exists()


# --- a real worker (streams/worker/app.py calls local_state.install in create_app) ---------------

def _items(worker, user: tuple[str, str]) -> list | None:
    tenant, user_id = user
    try:
        r = httpx.get(f"http://127.0.0.1:{worker.web_port}/state/{tenant}/{user_id}", timeout=2)
    except httpx.HTTPError:
        return None
    return r.json()["state"]["items"] if r.status_code == 200 else None


def _identities(faust_dir: Path) -> dict[str, str]:
    """RocksDB's DB id per partition store: a wiped and rebuilt store gets a new one."""
    return {p.parent.name: p.read_text() for p in (faust_dir / "v1" / "tables").glob("*.db/IDENTITY")}


def _run_and_remember(workers, data: Path) -> tuple[object, dict[str, list]]:
    worker = workers.start("w", data_dir=data)
    records = list(TrafficGenerator(seed=41, users=30).records(400))
    asyncio.run(produce(workers.broker.bootstrap_servers, records))
    wait_for(lambda: (worker.stats() or {}).get("consumed", 0) >= len(records), what="events consumed")
    clickers = sorted({(json.loads(r.value)["tenant"], json.loads(r.value)["user_id"])
                       for r in records if r.valid and r.topic == "clicks"})
    items = {u: wait_for(lambda u=u: _items(worker, u), what=f"state of {u}") for u in clickers[:8]}
    # States are written to RocksDB and the changelog before each offset commit: wait for one.
    wait_for(lambda: _written(worker.stats() or {}), what="the states written")
    return worker, items


def _written(stats: dict) -> bool:
    return stats.get("state_written_at", 0) > stats.get("last_batch_at", float("inf"))


def test_clean_stop_keeps_the_local_store(workers, tmp_path: Path) -> None:
    data = tmp_path / "w"
    faust_dir = data / "faust" / "w"
    worker, items = _run_and_remember(workers, data)
    assert worker.stop() == 0
    assert local_state.marker_path(faust_dir).is_file()
    stores = _identities(faust_dir)
    assert len(stores) == 4

    again = workers.start("w", data_dir=data)
    for user, expected in items.items():
        wait_for(lambda u=user, e=expected: _items(again, u) == e, timeout_s=45, what=f"{user} after restart")
    assert _identities(faust_dir) == stores                   # the same RocksDB stores, not rebuilt
    assert not local_state.marker_path(faust_dir).exists()
    assert WIPE_WARNING not in again.log_path.read_text(errors="replace")


def test_kill9_restart_wipes_and_restores_from_the_changelog(workers, tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    data = tmp_path / "w"
    faust_dir = data / "faust" / "w"
    worker, items = _run_and_remember(workers, data)
    worker.kill()
    assert not local_state.marker_path(faust_dir).exists()
    stores = _identities(faust_dir)

    # A local write that never reached the changelog (what kill -9 can leave behind), in every
    # partition's store: states are written without RocksDB's WAL, so a killed worker's own
    # writes may or may not be on disk, and the restart must serve neither.
    ghost = next(iter(items))
    for path in sorted((faust_dir / "v1" / "tables").glob("user-state-*.db")):
        db = Rdict(str(path), options=Options(raw_mode=True))
        try:
            db[state_key(*ghost)] = json.dumps({"items": ["ghost-item"], "terms": [], "seen": [], "bought": [],
                                                "clicks": 1, "searches": 0, "last_seen": time.time(),
                                                "last_rec_ts": 0.0}).encode()   # a state any version reads
        finally:
            db.close()

    again = workers.start("w", data_dir=data)
    for user, expected in items.items():
        wait_for(lambda u=user, e=expected: _items(again, u) == e, timeout_s=60,
                 what=f"{user} restored from the changelog")
    assert WIPE_WARNING in again.log_path.read_text(errors="replace")
    assert set(_identities(faust_dir).values()).isdisjoint(stores.values())   # rebuilt, not reopened


def test_a_second_worker_on_a_running_workers_data_dir_is_refused(tmp_path: Path) -> None:
    """It wiped the running worker's RocksDB (no clean-shutdown marker while that one runs)."""
    import signal
    import subprocess
    import sys

    from reckon.streams.core.errors import ReckonError

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from reckon.streams.kafka.local_state import hold\n"
                               f"hold({str(tmp_path)!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ReckonError, match=rf"in use by another worker \(pid {holder.pid}\): give each worker"):
            local_state.hold(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)           # a killed worker leaves no lock behind
        holder.wait()
    local_state.hold(tmp_path)
    local_state.hold(tmp_path)                       # this process holds it already: no conflict with itself
