"""Draining: on SIGTERM the worker refuses new work with 503 and /health turns 503 at
once, requests in flight finish (within the grace period), then the process exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.workers.sim_helpers import MODEL, asgi_client, make_app, serving, sse_payloads
from workers.sim.engine import GenerationRequest

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a long story."}]}
UNAVAILABLE = {
    "error": {
        "message": "The server is shutting down and accepts no new requests; "
        "retry on another worker.",
        "type": "ServiceUnavailableError",
        "param": None,
        "code": 503,
    }
}


async def test_draining_app_refuses_new_work_but_serves_health_as_503() -> None:
    app = make_app(output_tokens=3)
    async with asgi_client(app) as client:
        assert (await client.get("/health")).status_code == 200
        app.begin_drain()
        health = await client.get("/health")
        assert (health.status_code, health.content) == (503, b"")
        for path, body in (
            ("/v1/chat/completions", CHAT),
            ("/v1/completions", {"prompt": "x", "stream": True}),
            ("/v1/embeddings", {"input": "x"}),
        ):
            response = await client.post(path, json=body)
            assert (response.status_code, response.json()) == (503, UNAVAILABLE)
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/v1/models")).status_code == 200


async def test_drained_waits_for_requests_in_flight() -> None:
    app = make_app(token_delay_ms=5, output_tokens=20)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert await app.drained(0.0)
        body = {**CHAT, "stream": True}
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = aiter(response.aiter_lines())
            await anext(lines)  # the response has started: the request is in flight
            assert app.in_flight == 1
            app.begin_drain()
            assert not await app.drained(0.0)
            rest = [line async for line in lines]
        assert await app.drained(5.0)
    assert "data: [DONE]" in rest


async def test_requests_submitted_straight_to_the_engine_do_not_hold_the_drain() -> None:
    app = make_app()
    app.services.engine.submit(GenerationRequest("internal", prompt_tokens=3))
    app.begin_drain()
    assert await app.drained(0.0)


# -- the real process ----------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def worker_cmd() -> Iterator[tuple[str, list[str]]]:
    port = _free_port()
    yield (
        f"http://127.0.0.1:{port}",
        [sys.executable, "-m", "tidegate", "sim-worker", "--port", str(port), "--model", MODEL],
    )


def _start(command: list[str], url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, proc.communicate()[1].decode()
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "worker did not become healthy"
        time.sleep(0.05)


async def _wait_status(client: httpx.AsyncClient, path: str, status: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while (await client.get(path)).status_code != status:
        assert time.monotonic() < deadline, f"{path} never answered {status}"
        await asyncio.sleep(0.01)


async def _wait_running(client: httpx.AsyncClient, count: int, within_s: float) -> None:
    gauge = f'vllm:num_requests_running{{engine="0",model_name="{MODEL}"}} {float(count)}'
    deadline = time.monotonic() + within_s
    while gauge not in (await client.get("/metrics")).text:
        assert time.monotonic() < deadline, f"never {count} running"
        await asyncio.sleep(0.01)


async def test_sigterm_drains_a_running_stream_then_exits_zero(
    worker_cmd: tuple[str, list[str]],
) -> None:
    url, command = worker_cmd
    # ~150 modelled A100 decode steps: the stream runs for well over a second.
    proc = _start([*command, "--profile", "llama3-8b-a100", "--max-model-len", "4096"], url)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first_event = asyncio.Event()

            async def stream() -> str:
                body = {**CHAT, "stream": True, "max_tokens": 150, "ignore_eos": True}
                parts: list[str] = []
                async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                    assert resp.status_code == 200
                    async for chunk in resp.aiter_text():
                        parts.append(chunk)
                        first_event.set()
                return "".join(parts)

            running = asyncio.create_task(stream())
            await asyncio.wait_for(first_event.wait(), 10)
            proc.send_signal(signal.SIGTERM)
            await _wait_status(client, "/health", 503, within_s=2.0)
            refused = await client.post("/v1/chat/completions", json=CHAT)
            assert (refused.status_code, refused.json()) == (503, UNAVAILABLE)
            assert not running.done(), "the stream should still be running while draining"
            payloads = sse_payloads(await running)
        assert payloads[-1] == "[DONE]"
        assert payloads[-2]["choices"][0]["finish_reason"] == "length"
        text = "".join(p["choices"][0]["delta"].get("content", "") for p in payloads[:-1])
        assert len(text.split()) == 150
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


async def test_sigterm_stops_waiting_after_the_grace_period(
    worker_cmd: tuple[str, list[str]],
) -> None:
    url, command = worker_cmd
    proc = _start([*command, "--token-delay-ms", "50", "--drain-grace-s", "0.3"], url)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            body = {**CHAT, "max_tokens": 1000, "ignore_eos": True}  # ~50 s of tokens
            pending = asyncio.create_task(client.post("/v1/chat/completions", json=body))
            await _wait_running(client, 1, within_s=5.0)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert time.monotonic() - started < 5
            # Cut: uvicorn answers 500 for a response not yet started, or drops it.
            with contextlib.suppress(httpx.TransportError):
                assert (await pending).status_code == 500
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
