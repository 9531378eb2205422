"""Real servers on loopback for integration tests: sim workers as processes, the gateway
in a uvicorn server on a thread (so tests can also read its in-process state)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.app import GatewayApp, create_app
from gateway.settings import GatewaySettings, load_settings
from tidegate.localproc import LocalWorker, start_sim_worker, stop_all, wait_healthy
from workers.sim.asgi import lifespan

MODEL = "sim-model"


@contextlib.contextmanager
def sim_workers(
    n: int = 2, *, model: str = MODEL, args: Sequence[str] = ()
) -> Iterator[list[LocalWorker]]:
    workers = [start_sim_worker(model, args=args) for _ in range(n)]
    try:
        wait_healthy(workers, timeout_s=30)
        yield workers
    finally:
        stop_all(workers)


class _StartupSignal:
    """Sets an event once the wrapped app's lifespan start-up has completed."""

    def __init__(self, app: ASGIApp, started: threading.Event) -> None:
        self.app, self.started = app, started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def signalling_send(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                self.started.set()

        await self.app(scope, receive, signalling_send)


@dataclass
class RunningGateway:
    url: str
    app: GatewayApp
    loop: asyncio.AbstractEventLoop

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the gateway's event loop (state is owned by that loop)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return metric_value(httpx.get(self.url + "/metrics").text, name, labels)


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """Serve an ASGI app with uvicorn on a free loopback port until the block ends."""
    started = threading.Event()
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            _StartupSignal(app, started),
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
        )
    )
    loops: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        async def main() -> None:
            loops.append(asyncio.get_running_loop())
            await server.serve(sockets=[sock])

        asyncio.run(main())

    thread = threading.Thread(target=serve, name="asgi-server", daemon=True)
    thread.start()
    try:
        if not started.wait(30):
            raise TimeoutError("server did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", loops[0]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextlib.contextmanager
def run_gateway(
    workers: Sequence[LocalWorker] | Sequence[str], **overrides: Any
) -> Iterator[RunningGateway]:
    urls = [w if isinstance(w, str) else w.url for w in workers]
    discovery = {"workers": urls, "probe_interval_s": 0.2, **overrides.pop("discovery", {})}
    settings: GatewaySettings = load_settings(
        overrides={"discovery": discovery, "seed": 1, **overrides}
    )
    app = create_app(settings)
    with serve_in_thread(app) as (url, loop):
        yield RunningGateway(url, app, loop)


def metric_value(page: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(k) == v for k, v in (labels or {}).items()
            ):
                total += sample.value
    return total


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Async twin of :func:`wait_until` for state owned by another thread's event loop."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.005)


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> float:
    """Poll a condition another process owns (no event crosses the process boundary).

    Returns the seconds it took; raises if it never held."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
    return time.monotonic() - start


async def unavailable_worker(scope: Scope, receive: Receive, send: Send) -> None:
    """A worker that passes its probes but answers every inference request with 503."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/v1/models":
        status, body = (
            200,
            orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}),
        )
    elif path in ("/health", "/metrics"):
        status, body = 200, b""
    else:
        status, body = (
            503,
            orjson.dumps(
                {"error": {"message": "overloaded", "type": "x", "param": None, "code": 503}}
            ),
        )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
