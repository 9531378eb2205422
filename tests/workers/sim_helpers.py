"""Helpers shared by the simulated worker's tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import uvicorn

from workers.sim.server import SimApp, create_app
from workers.sim.settings import SimSettings

MODEL = "sim-model"


class JumpClock:
    """Virtual time that jumps straight to each requested deadline.

    Exact for one consumer at a time, which is all the engine timing tests need; nothing
    ever really sleeps.
    """

    def __init__(self, start: float = 100.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    async def sleep_until(self, deadline: float) -> None:
        self.t = max(self.t, deadline)


def make_app(**overrides: Any) -> SimApp:
    return create_app(SimSettings(**{"model": MODEL, **overrides}))


def asgi_client(app: SimApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim")


def sse_payloads(body: str) -> list[Any]:
    """Decode an SSE body into its ``data:`` payloads (JSON objects, or the string
    ``"[DONE]"``), checking the framing on the way."""
    assert body.endswith("\n\n")
    events = body[:-2].split("\n\n")
    payloads: list[Any] = []
    for event in events:
        assert event.startswith("data: "), event
        data = event[len("data: ") :]
        payloads.append(data if data == "[DONE]" else orjson.loads(data))
    return payloads


@contextlib.asynccontextmanager
async def serving(app: SimApp) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn (httptools, as in production) on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # connections queue in the backlog until the server accepts them
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, http="httptools", ws="none", lifespan="on", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
