"""`reckon worker`: the start checks that turn common failures into one line, Faust's worker
without its banner and spinner (terminal escapes in a log file), and one startup log line."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import faust

from reckon.streams.core.redact import redact
from reckon.streams.core.settings import Settings
from reckon.streams.core.version import __version__
from reckon.streams.worker.app import create_app
from reckon.streams.worker.stack import kafka
from reckon.streams.worker.web import check_bindable

log = logging.getLogger("reckon.worker")


def startup_fields(settings: Settings, app: faust.App, bootstrap: str) -> dict[str, str]:
    runtime = app.reckon_runtime  # type: ignore[attr-defined]  # None: a sink, which loads no model
    owns_store = settings.role in ("all", "sink")
    bind = f"[{settings.web_bind}]" if ":" in settings.web_bind else settings.web_bind
    return {
        "version": __version__,
        "role": settings.role,
        "model_version": (",".join(f"{v} ({slot})" if slot != "primary" else v for slot, v in runtime.versions.items())
                          if runtime is not None else "none (sink role)"),
        "device": runtime.device if runtime is not None else "none (sink role)",
        "bootstrap": bootstrap + (" (embedded, memory only)" if settings.embedded_kafka else ""),
        "store": redact(settings.clickhouse_url) if owns_store else "none (scorer role)",
        "web": f"http://{bind}:{settings.web_port}",
    }


def tenancy_warning(settings: Settings) -> str | None:
    """A likely slip, said once at start: with RECKON_TENANTS set, an event that names no tenant
    is its default tenant's, and the default is not served."""
    if settings.tenants and settings.default_tenant not in settings.tenants:
        return (f"RECKON_DEFAULT_TENANT {settings.default_tenant!r} is not in RECKON_TENANTS: events that name "
                "no tenant are dead-lettered (unknown_tenant)")
    return None


STOP_DEADLINE_S = 30.0


class Worker(faust.Worker):
    def __init__(self, app: faust.App, settings: Settings, bootstrap: str) -> None:
        super().__init__(app, loglevel=settings.log_level, override_logging=False, quiet=True,
                         redirect_stdouts=False)
        self.spinner = None
        self.reckon_fields = startup_fields(settings, app, bootstrap)
        self.reckon_warning = tenancy_warning(settings)
        self._stop_deadline: threading.Timer | None = None

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        """Stop as Faust does, within STOP_DEADLINE_S: with the broker gone, its flushes and
        commits waited on request timeouts (a SIGTERM did nothing for minutes). Past the
        deadline, or at a second signal, the process exits as after kill -9, which loses
        nothing: uncommitted offsets are read again on restart."""
        if self._stop_deadline is not None:
            _give_up(f"a second {signal.name}")
        self._stop_deadline = threading.Timer(STOP_DEADLINE_S, _give_up, (f"stopping took over {STOP_DEADLINE_S:.0f} s "
                                                                           "(is the broker reachable?)",))
        self._stop_deadline.daemon = True
        self._stop_deadline.start()
        super()._schedule_shutdown(signal)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        # In /stats: the worker holds its partitions now (the web port answers seconds earlier).
        self.app.reckon_stats["started_at"] = time.time()  # type: ignore[attr-defined]
        fields = self.reckon_fields
        log.info("reckon worker started: %s", " ".join(f"{k}={v}" for k, v in fields.items()),
                 extra={"startup": fields})
        if self.reckon_warning:
            log.warning(self.reckon_warning)


def _give_up(why: str) -> None:
    log.error("%s: exiting now; offsets not committed are read again on restart", why)
    logging.shutdown()
    os._exit(1)


def run_worker(settings: Settings) -> None:
    """Run until stopped (SIGTERM/SIGINT); raises ReckonError for the common start failures."""
    check_bindable(settings)
    with kafka(settings, log_path=settings.data_dir / "broker.log") as bootstrap:
        Worker(create_app(settings, bootstrap), settings, bootstrap).execute_from_commandline()
