"""Engine priority through the running gateway, over real HTTP to simulated workers: the
forwarded body carries ``priority`` only when ``upstream.engine_priority`` is on, and a
worker run with ``--scheduling-policy priority`` then starts critical requests first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.harness import MODEL, run_gateway, serve_in_thread, until
from workers.sim.engine import RequestRecord
from workers.sim.server import SimApp, create_app
from workers.sim.settings import SimSettings

PRIORITY_WORKER = {"profile": "llama3-8b-a100", "scheduling_policy": "priority"}


class RecordBodies:
    """Keeps the bytes of every POST body the wrapped worker receives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self.bodies.append(b"".join(chunks))
            return message

        await self.app(scope, recording, send)


@contextlib.contextmanager
def worker(**settings: Any) -> Iterator[tuple[str, RecordBodies, SimApp]]:
    app = create_app(SimSettings(model=MODEL, output_tokens=2, **settings))
    recorder = RecordBodies(app)
    with serve_in_thread(recorder) as (url, _):
        yield url, recorder, app


def chat(url: str, raw: bytes, priority: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if priority is not None:
        headers["x-priority"] = priority
    return httpx.post(url + "/v1/chat/completions", content=raw, headers=headers, timeout=30)


RAW = (
    b'{ "messages":[{"role":"user","content":"caf\\u00e9 \xe2\x98\x95"}],\n'
    b'  "model": "sim-model", "max_tokens": 2, "priority": 0, "x_future": [1.50, null] }'
)


def test_off_the_forwarded_body_is_the_clients_bytes() -> None:
    with worker() as (url, recorder, _), run_gateway([url]) as gw:
        for priority in (None, "critical", "sheddable"):
            response = chat(gw.url, RAW, priority)
            assert response.status_code == 200
        assert recorder.bodies == [RAW, RAW, RAW]


def test_on_the_forwarded_body_carries_the_engine_priority() -> None:
    with (
        worker(**PRIORITY_WORKER) as (url, recorder, _),
        run_gateway([url], upstream={"engine_priority": True}) as gw,
    ):
        for priority in (None, "critical", "standard", "sheddable"):
            assert chat(gw.url, RAW, priority).status_code == 200
        sent = [orjson.loads(body) for body in recorder.bodies]
        # Ours negated (vLLM runs lower first); the client's own priority 0 is replaced.
        assert [s["priority"] for s in sent] == [-1, -2, -1, 0]
        client = orjson.loads(RAW)
        assert all({**s, "priority": 0} == client for s in sent)


def test_on_in_front_of_an_fcfs_worker_the_workers_refusal_reaches_the_client() -> None:
    with worker() as (url, _, _), run_gateway([url], upstream={"engine_priority": True}) as gw:
        response = chat(gw.url, RAW, "critical")
        assert response.status_code == 400
        assert "Priority scheduling is not enabled" in response.json()["error"]["message"]


def test_a_priority_worker_starts_the_critical_request_before_the_standard_one() -> None:
    """One sequence at a time: a long request runs, a standard one then a critical one
    wait in the engine (the gate has room), and the critical one starts first."""
    with (
        worker(**PRIORITY_WORKER, max_num_seqs=1) as (url, _, app),
        run_gateway([url], upstream={"engine_priority": True}) as gw,
    ):
        # The engine's own finish order (responses can reach the client out of it): each
        # request asks for a different number of tokens, so its record says which it was.
        engine = app.services.engine
        finished: list[int] = []
        inner = engine._observer

        class Recording:
            def request_finished(self, record: RequestRecord) -> None:
                finished.append(record.num_generated)
                if inner is not None:
                    inner.request_finished(record)

            def step_finished(self, num_tokens: int) -> None:
                if inner is not None:
                    inner.step_finished(num_tokens)

        engine._observer = Recording()

        def waiting() -> int:
            return app.services.engine.snapshot().num_waiting

        async def send(client: httpx.AsyncClient, name: str, tokens: int, priority: str) -> int:
            body = {"model": MODEL, "prompt": name, "max_tokens": tokens, "ignore_eos": True}
            response = await client.post(
                gw.base_url + "/completions", json=body, headers={"x-priority": priority}
            )
            return response.status_code

        async def scenario() -> list[int]:
            async with httpx.AsyncClient(timeout=60) as client:
                long = asyncio.create_task(send(client, "long", 200, "standard"))
                await until(lambda: app.services.engine.snapshot().num_running == 1)
                standard = asyncio.create_task(send(client, "standard", 2, "standard"))
                await until(lambda: waiting() == 1)
                critical = asyncio.create_task(send(client, "critical", 3, "critical"))
                await until(lambda: waiting() == 2)
                assert not long.done()  # both queued behind it in the engine
                return await asyncio.gather(long, standard, critical)

        assert asyncio.run(scenario()) == [200, 200, 200]
        assert finished == [200, 3, 2]  # long, then critical, then standard
