"""Side-by-side CPU cost of the upstream HTTP clients the proxy path could use.

Starts one tiny uvicorn server (its own process, pinned to core 0) and drives it from
this process (pinned to core 1) with each client in turn, interleaved over rounds, at a
fixed concurrency.  Prints one JSON line per client with the client's CPU microseconds
per request (this process's user+sys time / requests), medians over rounds, and its
ratio to httpx.  Run: ``python bench/upstream_client.py [--requests N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

SERVER = r"""
import sys, uvicorn
BODY = (b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":'
        b'{"role":"assistant","content":"hello"}}],"usage":{"prompt_tokens":5,'
        b'"completion_tokens":1,"total_tokens":6}}')
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        msg = await receive()
        more = msg.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            loop="uvloop", http="httptools", access_log=False)
"""

PAYLOAD = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "hi " * 40}], "max_tokens": 8}
).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _drive(send_one, n: int, concurrency: int) -> None:
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            await send_one()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_httpx(url: str, n: int, c: int) -> float:
    import httpx

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=c)) as client:

        async def one() -> None:
            r = await client.post(
                url, content=PAYLOAD, headers={"content-type": "application/json"}
            )
            await r.aread()

        await _drive(one, 50, c)
        t0 = _cpu_s()
        await _drive(one, n, c)
        return (_cpu_s() - t0) / n


async def run_aiohttp(url: str, n: int, c: int) -> float:
    import aiohttp

    conn = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as session:

        async def one() -> None:
            async with session.post(
                url, data=PAYLOAD, headers={"content-type": "application/json"}
            ) as r:
                await r.read()

        await _drive(one, 50, c)
        t0 = _cpu_s()
        await _drive(one, n, c)
        return (_cpu_s() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
            os.sched_setaffinity(server.pid, {0})
            os.sched_setaffinity(0, {1})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        import uvloop

        results: dict[str, list[float]] = {"httpx": [], "aiohttp": []}
        for _ in range(args.rounds):
            for name, fn in (("httpx", run_httpx), ("aiohttp", run_aiohttp)):
                results[name].append(uvloop.run(fn(url, args.requests, args.concurrency)))
        base = statistics.median(results["httpx"])
        for name, vals in results.items():
            med = statistics.median(vals)
            print(
                json.dumps(
                    {
                        "client": name,
                        "concurrency": args.concurrency,
                        "cpu_us_per_request": round(med * 1e6, 1),
                        "ratio_to_httpx": round(med / base, 3),
                    }
                )
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
