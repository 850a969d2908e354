"""`reckon serve`: the read replica's HTTP port (streams/worker/replica.py).

`GET /recommendations/{user}?tenant=T` answers the user's latest recommendation as the
workers published it, judged by the worker's own rules (streams/worker/api.py
`read_request`: tokens, tenants, the contract's id limits; the same one-line errors).
`fresh=1` scores the user's state now, which only a worker can: it is forwarded to the
worker given by `--worker`, which forwards on to the user's owner. `GET /healthz` says
whether the replica has caught up with the topic (503 until it has, as does every read:
a 404 then would say "no recommendation" about a user not read yet); `GET /metrics` its
Prometheus figures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

from reckon.streams.core.errors import SettingsError
from reckon.streams.core.settings import Settings
from reckon.streams.pipeline.state import state_key
from reckon.streams.worker.app import GC_THRESHOLDS
from reckon.streams.worker.api import ANSWERED_BY, FORWARD_TIMEOUT_S, Asked, read_request, refusal
from reckon.streams.worker.auth import PageAuth, every_tenant_refusal
from reckon.streams.worker.replica import Replica
from reckon.streams.worker.web import CappedRunner, json_errors

log = logging.getLogger(__name__)

REPLICA = "replica"          # X-Reckon-Worker of the replica's answers
_CATCHING_UP = {"Retry-After": "1", ANSWERED_BY: REPLICA}


class _Answers:
    """The answers the worker's page helpers build through Faust's web (`json`, `bytes`), in
    plain aiohttp."""

    @staticmethod
    def json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(text=json.dumps(value, separators=(",", ":")), content_type="application/json",
                            status=status, headers=headers)


class _ReplicaCollector:
    """The replica's figures, read at scrape time."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    def collect(self) -> Iterator[Any]:
        r = self.replica
        yield CounterMetricFamily("reckon_replica_records_read", "Recommendations read off the topic", value=r.read)
        yield CounterMetricFamily("reckon_replica_records_skipped", "Records on the topic that are not a "
                                  "recommendation (not JSON, no user_id or tenant, a tombstone, over 256 KiB)",
                                  value=r.skipped)
        yield GaugeMetricFamily("reckon_replica_users", "Users whose latest recommendation is held",
                                value=len(r.latest))
        yield GaugeMetricFamily("reckon_replica_held_bytes", "Bytes of the held recommendations and their keys",
                                value=r.latest.bytes)
        yield GaugeMetricFamily("reckon_replica_caught_up", "1 once the topic was read to the end found on "
                                "starting (reads are answered), else 0", value=int(r.caught_up))
        if r.lag >= 0:
            yield GaugeMetricFamily("reckon_replica_lag_records", "Records behind the partitions' ends",
                                    value=r.lag)


class ReplicaPages:
    def __init__(self, settings: Settings, replica: Replica, worker_url: str | None,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.settings, self.replica, self.worker_url = settings, replica, worker_url
        self.auth = PageAuth(settings)
        self.session = session          # for fresh=1 (made when the app starts)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_ReplicaCollector(replica))
        ProcessCollector(registry=self.registry)
        self.answers = Counter("reckon_replica_requests", "GET /recommendations answers, by HTTP status",
                               ["status"], registry=self.registry)

    async def recommendations(self, request: web.Request) -> web.Response:
        answer = await self._recommendation(request)
        self.answers.labels(str(answer.status)).inc()
        return answer

    async def _recommendation(self, request: web.Request) -> web.Response:
        user = request.match_info["user"]
        asked = read_request(self.settings, self.auth, request, user)
        if not isinstance(asked, Asked):
            return refusal(_Answers, asked)
        if asked.fresh:
            return await self._forward(request)
        if not self.replica.caught_up:
            return self._catching_up()
        value = self.replica.latest.get(state_key(asked.tenant, user))
        if value is None:
            return _Answers.json({"error": f"no recommendation for user {user!r} of tenant {asked.tenant!r} yet"},
                                 status=404, headers={ANSWERED_BY: REPLICA})
        return web.Response(body=value, content_type="application/json", headers={ANSWERED_BY: REPLICA})

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text; with tokens set, RECKON_WEB_TOKEN's only (as a worker's /metrics)."""
        return (every_tenant_refusal(self.auth, _Answers, request, "/metrics")
                or web.Response(body=generate_latest(self.registry), content_type="text/plain"))

    async def healthz(self, request: web.Request) -> web.Response:
        r = self.replica
        body = {"caught_up": r.caught_up, "users": len(r.latest), "held_bytes": r.latest.bytes, "read": r.read,
                "skipped": r.skipped,
                "lag_records": r.lag if r.lag >= 0 else None,
                "last_read_s_ago": round(time.time() - r.last_read_at, 3) if r.last_read_at else None}
        return _Answers.json(body, status=200 if r.caught_up else 503)

    def _catching_up(self) -> web.Response:
        lag = f"{self.replica.lag} records" if self.replica.lag >= 0 else "the topic's end not known yet"
        return _Answers.json({"error": f"this replica is still reading the recommendations topic ({lag} behind)"},
                             status=503, headers=_CATCHING_UP)

    async def _forward(self, request: web.Request) -> web.Response:
        if self.worker_url is None:
            return _Answers.json({"error": "fresh=1 is scored by a worker: ask a worker's web port, or start "
                                           "`reckon serve --worker URL` to forward it"}, status=400)
        headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        url = self.worker_url.rstrip("/") + request.rel_url.path_qs
        try:
            async with self.session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(FORWARD_TIMEOUT_S)
                                        ) as answer:
                return web.Response(body=await answer.read(), status=answer.status, content_type="application/json",
                                    headers={ANSWERED_BY: answer.headers.get(ANSWERED_BY, "")})
        except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            return _Answers.json({"error": f"the worker at {self.worker_url} did not answer: {type(exc).__name__}"},
                                 status=502)


def make_app(pages: ReplicaPages) -> web.Application:
    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/recommendations/{user}", pages.recommendations)
    app.router.add_get("/healthz", pages.healthz)
    app.router.add_get("/metrics", pages.metrics)
    return app


async def serve(settings: Settings, bootstrap: str, bind: str, port: int, worker_url: str | None,
                max_users: int, max_bytes: int | None = None) -> None:
    """Read the topic and answer on bind:port until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    replica = Replica(bootstrap, settings.kafka_client_kwargs(), max_users, max_bytes)
    async with aiohttp.ClientSession() as session:
        runner = CappedRunner(make_app(ReplicaPages(settings, replica, worker_url, session)),
                              settings.web_max_connections, access_log=None,
                              keepalive_timeout=settings.web_idle_timeout_s)
        await runner.setup()
        reading = None
        try:
            try:
                await web.TCPSite(runner, bind, port).start()
            except OSError as exc:
                why = os.strerror(exc.errno) if exc.errno else str(exc)
                raise SettingsError("--port", f"cannot bind {bind}:{port} ({why.lower()})") from None
            # Everything built so far (aiohttp, aiokafka, settings) lives as long as the process:
            # out of the collector's sight, as in the worker (streams/worker/app.py), so that
            # its full collections walk only what requests and fetches allocate.
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
            reading = asyncio.create_task(replica.run())
            log.info("serving recommendations on http://%s:%d from the recommendations topic at %s", bind, port,
                     bootstrap)
            done = asyncio.create_task(stop.wait())
            await asyncio.wait([reading, done], return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                reading.result()        # the reader failed: say why
        finally:
            if reading is not None:
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
            await runner.cleanup()
