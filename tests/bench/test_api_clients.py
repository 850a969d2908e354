"""`reckon bench api`'s clients: at a set rate (open loop) a server that stalls is charged for
every request it delayed, not only for the one it held; back to back, only that one shows."""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp
from aiohttp import web

from reckon.bench.api import client_loop


async def _latencies(interval: float, stall_s: float, seconds: float) -> list[float]:
    served = {"n": 0}

    async def answer(request: web.Request) -> web.Response:
        served["n"] += 1
        if served["n"] == 5:            # one stall, early in the run
            await asyncio.sleep(stall_s)
        return web.json_response({"items": []})

    app = web.Application()
    app.router.add_get("/recommendations/{user}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    out: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            await client_loop(f"http://127.0.0.1:{port}", "cached", [("t", "u")], time.monotonic() + seconds,
                               out, session, random.Random(0), "", interval)
    finally:
        await runner.cleanup()
    return out


def test_open_loop_charges_the_requests_a_stall_delayed() -> None:
    stall = 0.3
    open_loop = asyncio.run(_latencies(0.02, stall, 1.0))
    # ~50 requests due in 1 s, all sent: the ~15 due during the stall waited for it
    assert 40 <= len(open_loop) <= 55, len(open_loop)
    assert sum(ms > 100 for ms in open_loop) >= 8, sorted(open_loop)[-20:]
    back_to_back = asyncio.run(_latencies(0.0, stall, 1.0))
    assert sum(ms > 100 for ms in back_to_back) == 1, sorted(back_to_back)[-5:]
