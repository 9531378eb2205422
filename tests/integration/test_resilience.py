"""Failures of a worker or of the client degrade service; no request is lost or hangs."""

from __future__ import annotations

import concurrent.futures
import os
import signal

import httpx
import openai
import pytest
from starlette.types import Receive, Scope, Send

from tests.harness import (
    MODEL,
    metric_value,
    run_gateway,
    serve_in_thread,
    sim_workers,
    unavailable_worker,
    wait_until,
)

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}


def running(worker_url: str) -> float:
    page = httpx.get(worker_url + "/metrics").text
    return metric_value(page, "vllm:num_requests_running")


def aborted(worker_url: str) -> float:
    page = httpx.get(worker_url + "/metrics").text
    return metric_value(page, "vllm:request_success_total", {"finished_reason": "abort"})


@pytest.fixture
def slow_worker():
    with sim_workers(1, args=["--token-delay-ms", "20"]) as workers:
        yield workers[0]


def test_closing_a_stream_midway_aborts_it_on_the_worker_within_a_second(slow_worker):
    with run_gateway([slow_worker]) as gw:
        body = {**CHAT, "max_tokens": 2000, "ignore_eos": True, "stream": True}
        with httpx.stream("POST", gw.base_url + "/chat/completions", json=body) as response:
            lines = response.iter_lines()
            for _ in range(5):
                next(lines)
            assert running(slow_worker.url) == 1
        took = wait_until(lambda: running(slow_worker.url) == 0, timeout_s=1.0)
        assert aborted(slow_worker.url) == 1
        assert gw.call(lambda: dict(gw.app.services.pool.in_flight)) == {slow_worker.url: 0}
        print(f"worker stopped generating {took * 1000:.0f} ms after the client left")


def test_abandoning_a_non_stream_request_aborts_it_on_the_worker(slow_worker):
    with run_gateway([slow_worker]) as gw:
        body = {**CHAT, "max_tokens": 2000, "ignore_eos": True}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(gw.base_url + "/chat/completions", json=body, timeout=0.5)
        wait_until(lambda: running(slow_worker.url) == 0, timeout_s=1.0)
        assert aborted(slow_worker.url) == 1


def test_killing_a_worker_leaves_requests_succeeding_on_the_others():
    with (
        sim_workers(3) as workers,
        run_gateway(workers) as gw,
        openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0) as client,
    ):

        def ask(i: int) -> int:
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"q{i}"}], max_tokens=3
            )
            return reply.usage.completion_tokens

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert all(pool.map(ask, range(40)))
            victim = workers[0]
            os.kill(victim.process.pid, signal.SIGKILL)
            victim.process.wait()
            results = list(pool.map(ask, range(200)))
        assert len(results) == 200 and all(results)
        served = {
            w.url: gw.metric(
                "tidegate_upstream_attempts_total", {"endpoint": w.url, "outcome": "ok"}
            )
            for w in workers
        }
        assert served[workers[1].url] > 0 and served[workers[2].url] > 0
        wait_until(
            lambda: gw.call(lambda: not gw.app.services.pool.snapshot.by_url(victim.url).healthy),
            2.0,
        )


def _draining_worker_app():
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/chat"):
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"x-tidegate-draining", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b'{"error": {}}'})
            return
        await unavailable_worker(scope, receive, send)

    return app


def test_a_draining_worker_is_taken_out_of_rotation_at_once():
    with (
        serve_in_thread(_draining_worker_app()) as (bad_url, _),
        sim_workers(1) as good,
        run_gateway([bad_url, good[0].url], discovery={"probe_interval_s": 30}) as gw,
    ):
        for _ in range(6):
            response = httpx.post(gw.base_url + "/chat/completions", json={**CHAT, "max_tokens": 2})
            assert response.status_code == 200
        assert (
            gw.metric(
                "tidegate_upstream_attempts_total", {"endpoint": bad_url, "outcome": "http_503"}
            )
            == 1
        )
        assert not gw.call(lambda: gw.app.services.pool.snapshot.by_url(bad_url).healthy)


def test_a_503_before_the_first_byte_is_retried_on_the_next_worker():
    with (
        serve_in_thread(unavailable_worker) as (bad_url, _),
        sim_workers(1) as good,
        run_gateway([bad_url, good[0].url]) as gw,
    ):
        for _ in range(10):
            response = httpx.post(gw.base_url + "/chat/completions", json={**CHAT, "max_tokens": 2})
            assert response.status_code == 200
        tried_bad = gw.metric(
            "tidegate_upstream_attempts_total", {"endpoint": bad_url, "outcome": "http_503"}
        )
        assert tried_bad > 0


def test_when_every_worker_is_unavailable_the_workers_answer_is_kept():
    with serve_in_thread(unavailable_worker) as (bad_url, _), run_gateway([bad_url]) as gw:
        response = httpx.post(gw.base_url + "/chat/completions", json=CHAT)
        assert response.status_code == 503
        assert response.json()["error"]["message"] == "overloaded"


def test_first_byte_timeout_is_504():
    with (
        sim_workers(1, args=["--ttft-ms", "3000"]) as workers,
        run_gateway(workers, timeouts={"first_byte_s": 0.3}) as gw,
    ):
        response = httpx.post(gw.base_url + "/chat/completions", json={**CHAT, "max_tokens": 2})
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "upstream_timeout"
        wait_until(lambda: running(workers[0].url) == 0, timeout_s=1.0)


def test_idle_stream_timeout_ends_the_stream_with_an_error_event():
    with (
        sim_workers(1, args=["--token-delay-ms", "2000"]) as workers,
        run_gateway(workers, timeouts={"idle_stream_s": 0.3}) as gw,
    ):
        body = {**CHAT, "max_tokens": 5, "ignore_eos": True, "stream": True}
        response = httpx.post(gw.base_url + "/chat/completions", json=body, timeout=10)
        assert response.status_code == 200
        events = [e for e in response.content.split(b"\n\n") if e]
        assert b"upstream_stream_error" in events[-1]
        assert gw.metric("tidegate_upstream_attempts_total", {"outcome": "broken_stream"}) == 1
