"""Request API benchmark: `GET /recommendations/{user}` (cached and `fresh=1`) and
`POST /events` latency while the worker ingests live traffic at half its measured rate.

1. produce `events` generated clicks (the backlog) and time one scoring worker over them
   (bench/rates.py): its full-path rate, and every backlog user has a cached recommendation;
2. replay new clicks of the same users at half that rate while, in a process of its own
   (the load generator's thread would otherwise share its interpreter), `clients`
   concurrent clients GET cached recommendations of random users, one client GETs with
   `fresh=1` and one POSTs one-event batches, for `seconds`;
3. report p50 / p99 / max per request kind and requests/s.

Latency is the client's: request sent to response read, over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import aiohttp

from reckon.bench.latency import percentiles
from reckon.bench.rates import clicks, produce_backlog, worker, worker_rate
from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
from reckon.streams.traffic.replay import produce_in_background

KINDS = ("cached", "fresh", "post")


async def _client_loop(base: str, kind: str, users: list[tuple[str, str]], until: float, out: list[float],
                       session: aiohttp.ClientSession, rng: random.Random, prefix: str) -> None:
    n = 0
    while time.monotonic() < until:
        tenant, user = rng.choice(users)
        started = time.perf_counter()
        if kind == "post":
            n += 1
            body = json.dumps([{"event_id": f"{prefix}{n}", "user_id": user, "item_id": f"i{rng.randrange(50)}",
                                "action": "view", "ts": time.time(), "tenant": tenant}])
            request = session.post(f"{base}/events", data=body)
        else:
            params = {"tenant": tenant, **({"fresh": "1"} if kind == "fresh" else {})}
            request = session.get(f"{base}/recommendations/{user}", params=params)
        async with request as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{kind}: HTTP {response.status} for {tenant}/{user}")
        out.append((time.perf_counter() - started) * 1000)


async def _clients(base: str, users: list[tuple[str, str]], clients: int, seconds: float) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {kind: [] for kind in KINDS}
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 2)) as session:
        loops = [_client_loop(base, "cached", users, until, found["cached"], session, random.Random(i), "")
                 for i in range(clients)]
        loops.append(_client_loop(base, "fresh", users, until, found["fresh"], session, random.Random(-1), ""))
        loops.append(_client_loop(base, "post", users, until, found["post"], session, random.Random(-2), "api-"))
        await asyncio.gather(*loops)
    return found


def clients_process(base: str, users: list[tuple[str, str]], clients: int, seconds: float) -> dict[str, list[float]]:
    """Run in a child process: every request's latency in ms, by kind."""
    return asyncio.run(_clients(base, users, clients, seconds))


def run(registry: Path, workdir: Path, events: int = 200_000, users: int = 500, clients: int = 8,
        seconds: float = 10.0, min_seconds: float = 2.0, partitions: int = 4) -> dict:
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, partitions)
        backlog = clicks(events, seed=41, users=users, id_prefix="b")
        asyncio.run(produce_backlog(bootstrap, "clicks", backlog))
        proc = worker(bootstrap, registry, workdir, "api", "all")
        try:
            rate, _, _ = worker_rate(proc, events)
            docs = {(doc["tenant"], doc["user_id"]) for doc in (json.loads(r.value) for r in backlog)}
            half = rate / 2
            load = clicks(int(half * (seconds + 5)), seed=42, users=users, id_prefix="l")
            base = f"http://127.0.0.1:{proc.web_port}"
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                pool.submit(int, 0).result()                  # the child is up before the load starts
                sender = produce_in_background(bootstrap, load, rate=half)
                before = proc.stats() or {}
                found = pool.submit(clients_process, base, sorted(docs), clients, seconds).result()
                after = proc.stats() or {}
                sender.join()
        finally:
            proc.stop()
    ingested = after.get("consumed", 0) - before.get("consumed", 0)
    result: dict = {"events": events, "users": len(docs), "clients": clients, "seconds": seconds,
                    "full_path_events_per_s": round(rate), "load_events_per_s": round(half),
                    "ingested_during_requests_per_s": round(ingested / seconds)}
    for kind in KINDS:
        stats = percentiles(found[kind])
        result[f"{kind}_requests"] = stats["samples"]
        result[f"{kind}_requests_per_s"] = round(stats["samples"] / seconds, 1)
        for cut in ("p50_ms", "p99_ms", "max_ms"):
            result[f"{kind}_{cut}"] = stats[cut]
    result["requests_per_s"] = round(sum(len(v) for v in found.values()) / seconds, 1)
    return result
