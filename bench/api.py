"""Request API benchmark: `GET /recommendations/{user}` (cached and `fresh=1`) and
`POST /events` latency while the worker ingests live traffic at half its measured rate.

1. produce `events` generated clicks (the backlog) and time one scoring worker over them
   (bench/rates.py): its full-path rate, and every backlog user has a cached recommendation;
2. replay new clicks of the same users at half that rate while, in a process of its own
   (the load generator's thread would otherwise share its interpreter), `clients`
   concurrent clients GET cached recommendations of random users at `request_rate` per s in
   all (open loop; 0: each as fast as answers come), one client GETs with `fresh=1` and
   one POSTs one-event batches, back to back, for `seconds`;
   then, under the same load, the same cached-GET clients for `seconds` against each of
   the request floor (a plain aiohttp server in a process of its own answering a stored
   body: what loopback HTTP costs on this machine while it ingests, none of it Reckon's)
   and a read replica (`reckon serve`, started after the worker's phase, caught up with the
   recommendations topic and reading it as the worker goes on publishing), in alternating
   rounds, so that the two see the same moments of the load;
3. report p50 / p99 / max per request kind, requests/s, the events/s ingested meanwhile
   (whether the worker still kept up with half load), the floor's cached p50 / p99 / max
   and the cached p99 over the floor's; the replica's the same way, and the recommendations
   per second it read meanwhile.

Latency is the client's, over loopback HTTP: response read minus when the request was due
(open loop) or sent (back to back). Back to back, 8 clients on a 2-core machine took the
CPU the worker needed: it ingested 18k of a 23k events/s load (measured), so the default
is an open-loop rate.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from reckon.bench.latency import percentiles
from reckon.bench.rates import clicks, produce_backlog, worker, worker_rate
from reckon.streams.kafka.broker import EmbeddedBroker, create_topics, free_port
from reckon.streams.traffic.replay import produce_in_background
from reckon.streams.worker.stack import start_replica

KINDS = ("cached", "fresh", "post")
SETTLE_S = 3.0      # the load runs this long before any phase: its start-up is no phase's
ROUNDS = 5          # the floor's and the replica's phases, each cut in this many alternating rounds


async def client_loop(base: str, kind: str, users: list[tuple[str, str]], until: float, out: list[float],
                       session: aiohttp.ClientSession, rng: random.Random, prefix: str,
                       interval: float = 0.0) -> None:
    """One client's requests until `until`: back to back, or (interval > 0) one every
    `interval` s, timed from when it was due, so a server that stalls is charged for the
    requests it delayed (no coordinated omission)."""
    n = 0
    due = time.perf_counter()
    while time.monotonic() < until:
        tenant, user = rng.choice(users)
        if interval:
            due += interval
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            started = due
        else:
            started = time.perf_counter()
        if kind == "post":
            n += 1
            body = json.dumps([{"event_id": f"{prefix}{n}", "user_id": user, "item_id": f"i{rng.randrange(50)}",
                                "action": "view", "ts": time.time(), "tenant": tenant}])
            request = session.post(f"{base}/events", data=body, headers={"Content-Type": "application/json"})
        else:
            params = {"tenant": tenant, **({"fresh": "1"} if kind == "fresh" else {})}
            request = session.get(f"{base}/recommendations/{user}", params=params)
        async with request as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{kind}: HTTP {response.status} for {tenant}/{user}")
        out.append((time.perf_counter() - started) * 1000)


async def _clients(base: str, users: list[tuple[str, str]], clients: int, seconds: float,
                   rate: float, cached_only: bool) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {kind: [] for kind in KINDS}
    until = time.monotonic() + seconds
    interval = clients / rate if rate else 0.0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 2)) as session:
        loops = [client_loop(base, "cached", users, until, found["cached"], session, random.Random(i), "",
                              interval) for i in range(clients)]
        if not cached_only:
            loops.append(client_loop(base, "fresh", users, until, found["fresh"], session, random.Random(-1), ""))
            loops.append(client_loop(base, "post", users, until, found["post"], session, random.Random(-2),
                                      "api-"))
        await asyncio.gather(*loops)
    return found


def clients_process(base: str, users: list[tuple[str, str]], clients: int, seconds: float,
                    rate: float, cached_only: bool = False) -> dict[str, list[float]]:
    """Run in a child process: every request's latency in ms, by kind."""
    # The clients' own full collections (tens of ms, more as their samples pile up) stalled
    # every client at once, and were charged to the server: no collections while they run.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return asyncio.run(_clients(base, users, clients, seconds, rate, cached_only))
    finally:
        gc.enable()
        gc.unfreeze()


def floor_server(port: int, users: list[tuple[str, str]], ready: Any) -> None:
    """The request floor, in a process of its own: a plain aiohttp server answering
    `GET /recommendations/{user}` with a stored recommendation-sized body, nothing else."""
    body = json.dumps({"items": [f"item-{i}" for i in range(20)], "scores": [0.5] * 20,
                       "model_version": "floor", "ts": time.time()}).encode()
    stored = {user: body for _, user in users}

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=stored[request.match_info["user"]], content_type="application/json")

    app = web.Application()
    app.router.add_get("/recommendations/{user}", answer)
    # As the replica and the worker do: the heap this process imported (the bench's modules)
    # out of the collector's sight. Without it its full collections stalled answers for
    # up to ~110 ms under the load, and the floor was no floor.
    gc.freeze()
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def run(registry: Path, workdir: Path, events: int = 200_000, users: int = 500, clients: int = 8,
        seconds: float = 10.0, min_seconds: float = 2.0, partitions: int = 4, request_rate: float = 500.0) -> dict:
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, partitions)
        backlog = clicks(events, seed=41, users=users, id_prefix="b")
        asyncio.run(produce_backlog(bootstrap, "clicks", backlog))
        proc = worker(bootstrap, registry, workdir, "api", "all")
        try:
            rate, _, _ = worker_rate(proc, events)
            docs = sorted({(doc["tenant"], doc["user_id"]) for doc in (json.loads(r.value) for r in backlog)})
            half = rate / 2
            # the load lasts every phase: the worker's requests, the replica's start, the
            # floor's and the replica's
            load = clicks(int(half * (SETTLE_S + 3 * seconds + 20)), seed=42, users=users, id_prefix="l")
            spawn = get_context("spawn")
            ready = spawn.Event()
            port = free_port()
            floor = spawn.Process(target=floor_server, args=(port, docs, ready), daemon=True)
            floor.start()
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                pool.submit(int, 0).result()                  # the child is up before the load starts
                if not ready.wait(60):
                    raise RuntimeError("the request floor's server did not start")
                sender = produce_in_background(bootstrap, load, rate=half)
                time.sleep(SETTLE_S)
                before = proc.stats() or {}
                found = pool.submit(clients_process, f"http://127.0.0.1:{proc.web_port}", docs, clients, seconds,
                                    request_rate).result()
                after = proc.stats() or {}
                replica = start_replica(bootstrap, workdir / "replica.log")
                try:
                    replica_before, rounds_started = replica.stats() or {}, time.monotonic()
                    # floor and replica in alternating rounds: the same moments of the load for both
                    floor_found: dict[str, list[float]] = {"cached": []}
                    replica_found: dict[str, list[float]] = {"cached": []}
                    for _ in range(ROUNDS):
                        for target, into in ((port, floor_found), (replica.web_port, replica_found)):
                            into["cached"] += pool.submit(clients_process, f"http://127.0.0.1:{target}", docs,
                                                          clients, seconds / ROUNDS, request_rate,
                                                          True).result()["cached"]
                    replica_after, rounds_took = replica.stats() or {}, time.monotonic() - rounds_started
                finally:
                    replica.stop()
                    floor.terminate()
                sender.join()
        finally:
            proc.stop()
    ingested = after.get("consumed", 0) - before.get("consumed", 0)
    result: dict = {"events": events, "users": len(docs), "clients": clients, "seconds": seconds,
                    "cached_rate_asked_per_s": request_rate or None,
                    "full_path_events_per_s": round(rate), "load_events_per_s": round(half),
                    "ingested_during_requests_per_s": round(ingested / seconds)}
    for kind in KINDS:
        stats = percentiles(found[kind])
        result[f"{kind}_requests"] = stats["samples"]
        result[f"{kind}_requests_per_s"] = round(stats["samples"] / seconds, 1)
        for cut in ("p50_ms", "p99_ms", "max_ms"):
            result[f"{kind}_{cut}"] = stats[cut]
    result["requests_per_s"] = round(sum(len(v) for v in found.values()) / seconds, 1)
    floor_stats = percentiles(floor_found["cached"])
    for cut in ("p50_ms", "p99_ms", "max_ms"):
        result[f"floor_cached_{cut}"] = floor_stats[cut]
    if result["cached_p99_ms"] is not None and floor_stats["p99_ms"] is not None:
        result["cached_p99_over_floor_ms"] = round(result["cached_p99_ms"] - floor_stats["p99_ms"], 2)
    replica_stats = percentiles(replica_found["cached"])
    result["replica_cached_requests_per_s"] = round(replica_stats["samples"] / seconds, 1)
    for cut in ("p50_ms", "p99_ms", "max_ms"):
        result[f"replica_cached_{cut}"] = replica_stats[cut]
    if replica_stats["p99_ms"] is not None and floor_stats["p99_ms"] is not None:
        result["replica_cached_p99_over_floor_ms"] = round(replica_stats["p99_ms"] - floor_stats["p99_ms"], 2)
    # what the replica read off the topic meanwhile, and how far behind it ended
    result["replica_read_per_s"] = round((replica_after.get("read", 0) - replica_before.get("read", 0)) / rounds_took)
    result["replica_lag_records"] = replica_after.get("lag_records")
    return result
