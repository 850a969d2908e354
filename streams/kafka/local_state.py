"""Local table state after an unclean shutdown: wipe it and restore from the changelog.

A worker writes its RocksDB store first and the changelog message after (Faust does the
same per key), so a worker killed with -9 can leave local writes that never reached the
changelog topic, and a restart on the same data dir would serve them (and never correct
them: recovery reads the changelog only from the offset the store persisted). The
changelog is the source of truth, so, as Kafka Streams does after an unclean shutdown,
the local table state is deleted and Faust rebuilds it from the changelog.

How an unclean shutdown is told from a clean one: a marker file in the worker's data
dir, written only by a clean stop. `install` (call it in create_app, before the app
starts and opens any store):

- marker present: the last stop was clean, local state is kept (fast restart);
- table state present and no marker: the last run crashed or was killed: the table dir
  is deleted, with a warning saying why;
- then the marker is removed, so a crash of *this* run leaves none;
- a hook on the app's `on_shutdown` (mode's Service.stop runs it after the app's
  children have stopped: consumer, tables and their stores, and after the producer flush
  in App.on_stop) writes the marker again, unless the app crashed: a crashed run's
  producer may not have delivered every changelog message, so the next start restores.

A stop that never reaches `on_shutdown` (kill -9, OOM, power loss, a hung shutdown the
supervisor kills) leaves no marker, which is the safe direction: the worst case of a
missing marker is a slower restart, never stale state.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from pathlib import Path

import faust

from reckon.streams.core.errors import ReckonError

log = logging.getLogger(__name__)

MARKER = "clean-shutdown"


def marker_path(datadir: Path) -> Path:
    return Path(datadir) / MARKER


def has_table_state(tabledir: Path) -> bool:
    """Whether `tabledir` holds anything (RocksDB partition stores, their backups)."""
    try:
        return any(Path(tabledir).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return False


def prepare(datadir: Path, tabledir: Path) -> bool:
    """Before any store opens: wipe `tabledir` if it holds state and the last stop left no
    clean-shutdown marker; then remove the marker. Returns True if the state was wiped."""
    marker = marker_path(datadir)
    clean = marker.is_file()
    wiped = False
    if not clean and has_table_state(tabledir):
        log.warning("local table state in %s was not closed cleanly (no %s marker: the last run was "
                    "killed or crashed), so it may hold writes that never reached the changelog; "
                    "wiping it, tables are restored from their changelog topics", tabledir, MARKER)
        shutil.rmtree(tabledir)
        wiped = True
    marker.unlink(missing_ok=True)
    return wiped


def mark_clean(datadir: Path) -> Path:
    """Write the clean-shutdown marker atomically (a torn marker must not count as clean)."""
    marker = marker_path(datadir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{MARKER}.tmp")
    with open(tmp, "w") as f:
        json.dump({"pid": os.getpid(), "stopped_at": time.time()}, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(marker)
    return marker


LOCK = "worker.lock"
_held: dict[Path, int] = {}         # data dir -> the descriptor holding its lock, for this process's life


def hold(datadir: Path) -> None:
    """Take `datadir` for this process, or refuse in one line: a second worker started on a
    running one's data dir (the same RECKON_DATA_DIR and RECKON_WORKER_NAME) found no
    clean-shutdown marker and wiped the running worker's RocksDB. The lock is the kernel's
    (flock), so a worker killed with -9 leaves none behind."""
    datadir = Path(datadir).resolve()
    if datadir in _held:
        return
    datadir.mkdir(parents=True, exist_ok=True)
    fd = os.open(datadir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ReckonError(f"the worker data dir {datadir} is in use by another worker (pid {holder}): give each "
                          "worker its own RECKON_WORKER_NAME or RECKON_DATA_DIR") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[datadir] = fd


def install(app: faust.App, datadir: Path) -> None:
    """Check the last shutdown now and mark this run's clean stop when it happens.

    Call right after `faust.App(...)`, before the app starts (no store may be open yet).
    """
    datadir = Path(datadir)
    hold(datadir)
    tabledir = Path(app.conf.tabledir)
    prepare(datadir, tabledir)

    on_start = app.on_start
    on_shutdown = app.on_shutdown

    async def _on_start() -> None:
        # An app restarted in-process (after a clean stop) must not keep a stale marker.
        marker_path(datadir).unlink(missing_ok=True)
        await on_start()

    async def _on_shutdown() -> None:
        await on_shutdown()
        if app.crashed:
            log.warning("worker crashed (%r): not marking %s clean; the next start restores tables from "
                        "their changelog topics", app.crash_reason, tabledir)
            return
        mark_clean(datadir)

    app.on_start = _on_start  # type: ignore[method-assign]
    app.on_shutdown = _on_shutdown  # type: ignore[method-assign]
