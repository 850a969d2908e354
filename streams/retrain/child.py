"""Retrains for a worker that holds the ClickHouse store, run in a child process.

The worker reads the window's clicks (it owns the store), writes them to a file and runs
`reckon retrain --events FILE --json` as a child, one retrain at a time: PyTorch never
enters the serving process, a training crash or its memory stays in the child, and the
child's CPU time is the retrain's own (what its training cost is priced from).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.core.errors import ReckonError
from reckon.streams.core.settings import Settings
from reckon.streams.retrain.events import read_clicks, write_events
from reckon.streams.retrain.policy import check_overrides

log = logging.getLogger(__name__)

class RetrainRunner:
    def __init__(self, settings: Settings, ch: ClickHouse) -> None:
        self.settings = settings
        self.ch = ch
        self._lock = asyncio.Lock()
        self.last: dict[str, Any] | None = None

    @property
    def running(self) -> bool:
        return self._lock.locked()

    async def run(self, overrides: dict[str, str] | None = None) -> dict[str, Any]:
        """One retrain (waiting for one in progress first); returns its result or {"error": ...}
        (overrides checked before anything is read: policy.check_overrides)."""
        try:
            overrides = check_overrides(overrides or {})
        except ReckonError as exc:
            return {"error": str(exc)}
        async with self._lock:
            self.last = await self._run(overrides)
        return self.last

    async def _run(self, overrides: dict[str, Any]) -> dict[str, Any]:
        hours = float(overrides.get("window_hours", self.settings.retrain_window_hours))
        end = datetime.now(timezone.utc)
        clicks = await asyncio.to_thread(read_clicks, self.ch, end - timedelta(hours=hours), end,
                                         self.settings.retrain_max_clicks)
        work = self.settings.data_dir.resolve() / "retrain"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            path = Path(tmp) / "clicks.jsonl"
            await asyncio.to_thread(write_events, clicks, path)
            argv = [sys.executable, "-m", "reckon.streams.cli.main", "retrain", "--events", str(path), "--json",
                    "--source-label", f"clickhouse clicks_log, the last {hours:g} h ({self.settings.worker_name})"]
            for name, value in overrides.items():
                if name != "window_hours":
                    argv += [f"--{name.replace('_', '-')}", str(value)]
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
        lines = out.decode(errors="replace").strip().splitlines()
        try:
            result = json.loads(lines[-1])     # `--json` prints its result or {"error": ...} last
        except (IndexError, ValueError):
            tail = (err.decode(errors="replace").strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            result = {"error": f"the retrain process failed: {tail}"}
        log.info("retrain: %s", result.get("reason") or result.get("error"))
        return result
