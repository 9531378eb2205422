"""Server-side CPU per request of the ways the proxy path could be written.

Each variant is the same endpoint (read a chat request's JSON body, answer fixed bytes)
served by uvicorn + uvloop + httptools, one at a time on core 1, driven from core 0 at
concurrency 16. Prints one JSON line per variant: the server's CPU microseconds per
request (from /proc, medians over rounds) and its ratio to raw ASGI.

    python bench/asgi_framework.py [--requests 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.overhead import cpu_seconds, pin
from tidegate.localproc import LocalWorker, free_port, wait_healthy

ANSWER = b'{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1}}'

VARIANTS = {
    "raw_asgi": """
import orjson
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        body = b""
    else:
        chunks, more = [], True
        while more:
            m = await receive(); chunks.append(m.get("body", b"")); more = m.get("more_body")
        orjson.loads(b"".join(chunks))["model"]
        body = ANSWER
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
""",
    "fastapi_request": """
import orjson
from fastapi import FastAPI, Request, Response
app = FastAPI()
@app.get("/health")
async def health(): return Response(b"")
@app.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    orjson.loads(await request.body())["model"]
    return Response(ANSWER, media_type="application/json")
""",
    "fastapi_pydantic": """
from typing import Any
from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict
class Chat(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
app = FastAPI()
@app.get("/health")
async def health(): return Response(b"")
@app.post("/v1/chat/completions")
async def chat(body: Chat) -> Response:
    return Response(ANSWER, media_type="application/json")
""",
}

RUN = """
import sys, uvicorn
ANSWER = {answer!r}
{code}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_level="warning", access_log=False, proxy_headers=False, server_header=False)
"""

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi " * 40}]}).encode()


async def drive(url: str, n: int, concurrency: int) -> None:
    remaining = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def user() -> None:
            for _ in remaining:
                async with session.post(url, data=BODY) as response:
                    await response.read()

        await asyncio.gather(*(user() for _ in range(concurrency)))


def measure(name: str, n: int, concurrency: int) -> float:
    port = free_port()
    code = RUN.format(answer=ANSWER, code=VARIANTS[name])
    server = subprocess.Popen([sys.executable, "-c", code, str(port)])
    try:
        pin(server.pid, 1)
        url = f"http://127.0.0.1:{port}"
        wait_healthy([LocalWorker(url, server)], 30)
        import uvloop

        uvloop.run(drive(url + "/v1/chat/completions", 200, concurrency))
        before = cpu_seconds(server.pid)
        uvloop.run(drive(url + "/v1/chat/completions", n, concurrency))
        return (cpu_seconds(server.pid) - before) / n
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    pin(0, 0)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name in VARIANTS:
            samples[name].append(measure(name, args.requests, args.concurrency))
    base = statistics.median(samples["raw_asgi"])
    for name, values in samples.items():
        med = statistics.median(values)
        print(
            json.dumps(
                {
                    "variant": name,
                    "concurrency": args.concurrency,
                    "server_cpu_us_per_request": round(med * 1e6, 1),
                    "ratio_to_raw_asgi": round(med / base, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
