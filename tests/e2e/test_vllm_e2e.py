"""The gateway in front of two real vLLM servers (vLLM's CPU build, the tiny model).

What only real vLLM can show: the official client works end to end, streamed usage is
exact, routing follows vLLM's own waiting queue, a client that leaves makes vLLM abort,
and a worker drained with SIGTERM under load loses no request. The drain test ends one of
the two workers, so it stays last.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from tests.e2e.fleet import MAX_NUM_SEQS, MODEL
from tests.harness import RunningGateway, metric_value, run_gateway, wait_until
from tests.vllm.engine_stack import requires_engine
from tidegate.localproc import LocalWorker

pytestmark = [pytest.mark.vllm, pytest.mark.slow, requires_engine]

IGNORE_EOS = {"ignore_eos": True}
LONG = 1900  # output tokens that keep a request busy for seconds (max model length 2048)


@pytest.fixture(scope="module")
def gateway(vllm_workers: list[LocalWorker]) -> Iterator[RunningGateway]:
    with run_gateway(vllm_workers) as running:
        yield running


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0) as c:
        yield c


def worker_metric(url: str, name: str, labels: dict[str, str] | None = None) -> float:
    return metric_value(httpx.get(url + "/metrics").text, name, labels)


def engine_load(url: str) -> float:
    return worker_metric(url, "vllm:num_requests_running") + worker_metric(
        url, "vllm:num_requests_waiting"
    )


def attempts(gateway: RunningGateway, url: str, outcome: str | None = None) -> float:
    labels = {"endpoint": url} if outcome is None else {"endpoint": url, "outcome": outcome}
    return gateway.metric("tidegate_upstream_attempts_total", labels)


def open_stream(url: str, prompt: str, max_tokens: int) -> socket.socket:
    """A streamed completion sent straight to a worker over a bare socket; closing the
    socket is the client leaving."""
    parts = urlsplit(url)
    body = json.dumps(
        {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "stream": True, **IGNORE_EOS}
    ).encode()
    sock = socket.create_connection((parts.hostname, parts.port))
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def test_models_lists_what_the_workers_serve(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_chat(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello!"}],
        max_tokens=8,
        extra_body=IGNORE_EOS,
    )
    assert reply.model == MODEL
    assert reply.choices[0].finish_reason == "length"
    assert isinstance(reply.choices[0].message.content, str)
    assert reply.usage is not None and reply.usage.completion_tokens == 8


def test_stream_with_usage_is_exact(client: openai.OpenAI, gateway: RunningGateway) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count with me"}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=IGNORE_EOS,
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"

    # Without include_usage the gateway still counts the tokens, and the client sees no usage.
    before = gateway.metric("tidegate_completion_tokens_total", {"model": MODEL})
    plain = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Again"}],
            max_tokens=7,
            stream=True,
            extra_body=IGNORE_EOS,
        )
    )
    assert all(c.usage is None for c in plain)
    assert gateway.metric("tidegate_completion_tokens_total", {"model": MODEL}) - before == 7


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL, prompt="def main():", max_tokens=5, extra_body=IGNORE_EOS
    )
    assert isinstance(reply.choices[0].text, str)
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert reply.usage.prompt_tokens >= 2


def test_prefix_caching_is_on(vllm_workers: list[LocalWorker]) -> None:
    url = vllm_workers[0].url
    prompt = "import os\n" * 120  # several 128-token blocks
    hits = worker_metric(url, "vllm:prefix_cache_hits_total")
    for _ in range(2):
        httpx.post(
            url + "/v1/completions",
            json={"model": MODEL, "prompt": prompt, "max_tokens": 1},
            timeout=60,
        ).raise_for_status()
    assert worker_metric(url, "vllm:prefix_cache_hits_total") - hits >= 128


def test_routing_follows_vllms_waiting_queue(
    client: openai.OpenAI, gateway: RunningGateway, vllm_workers: list[LocalWorker]
) -> None:
    """Worker A gets more long requests than it runs at once, straight from outside the
    gateway; the gateway only knows it from A's ``vllm:num_requests_waiting``. With its own
    in-flight counts equal (zero) for both, only that queue can steer requests to B."""
    a, b = vllm_workers[0].url, vllm_workers[1].url
    hogs = [open_stream(a, f"hog {i}", LONG) for i in range(2 * MAX_NUM_SEQS)]
    try:
        wait_until(lambda: worker_metric(a, "vllm:num_requests_waiting") >= 2, timeout_s=60)
        wait_until(lambda: gateway.call(lambda: _seen_waiting(gateway, a)) >= 2, timeout_s=10)
        before_a, before_b = attempts(gateway, a), attempts(gateway, b, "ok")
        for i in range(6):
            client.completions.create(
                model=MODEL, prompt=f"routed {i}", max_tokens=4, extra_body=IGNORE_EOS
            )
        still_waiting = worker_metric(a, "vllm:num_requests_waiting")
    finally:
        for hog in hogs:
            hog.close()
    assert still_waiting > 0, "A's queue drained before the test was done: inconclusive"
    assert attempts(gateway, a) - before_a == 0
    assert attempts(gateway, b, "ok") - before_b == 6
    wait_until(lambda: engine_load(a) == 0, timeout_s=60)


def _seen_waiting(gateway: RunningGateway, url: str) -> float:
    endpoint = gateway.app.services.pool.snapshot.by_url(url)
    return endpoint.waiting(MODEL) if endpoint is not None else 0.0


def test_client_disconnect_makes_vllm_abort(
    gateway: RunningGateway, vllm_workers: list[LocalWorker]
) -> None:
    """vLLM 0.32 does not count a client's abort in ``request_success_total`` (that path
    drops the request before its stats are taken), so the evidence is that generation stops
    far short of ``max_tokens`` and the request never finishes as "length"."""
    urls = [w.url for w in vllm_workers]

    def total(name: str, labels: dict[str, str] | None = None) -> float:
        return sum(worker_metric(u, name, labels) for u in urls)

    wait_until(lambda: sum(engine_load(u) for u in urls) == 0, timeout_s=60)
    generated_before = total("vllm:generation_tokens_total")
    finished_before = total("vllm:request_success_total")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me everything"}],
        "max_tokens": LONG,
        "stream": True,
        **IGNORE_EOS,
    }
    with (
        httpx.Client(timeout=60) as http,
        http.stream("POST", gateway.base_url + "/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        events = 0
        while events < 3:
            events += next(lines).startswith("data: ")
        # vLLM publishes its gauges after each engine step.
        wait_until(lambda: total("vllm:num_requests_running") == 1, timeout_s=10)
    # The client is gone: the gateway closes its upstream connection and vLLM aborts.
    took = wait_until(lambda: total("vllm:num_requests_running") == 0, timeout_s=15)
    generated = total("vllm:generation_tokens_total") - generated_before
    assert generated < LONG / 2, f"{generated} tokens: vLLM did not stop generating"
    assert total("vllm:request_success_total") == finished_before
    assert took < 5


def test_sigterm_drains_a_worker_under_load_without_losing_a_request(
    gateway: RunningGateway, vllm_workers: list[LocalWorker], worker_logs: list[Path]
) -> None:
    """Keep last: it ends worker B. Eight clients loop short requests through the gateway
    (half streamed, no client retries); B gets SIGTERM while it has requests in flight."""
    b = vllm_workers[1]
    done: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def loop(index: int) -> None:
        with openai.OpenAI(
            base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=60
        ) as client:
            while not stop.is_set():
                try:
                    tokens = _one_request(client, stream=index % 2 == 1, tag=f"{index}")
                except Exception as exc:  # any failure at all is what this test looks for
                    failures.append(repr(exc))
                    continue
                if tokens != 16:
                    failures.append(f"{tokens} completion tokens instead of 16")
                done.append(str(index))

    clients = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(8)]
    for thread in clients:
        thread.start()
    try:
        wait_until(
            lambda: len(done) >= 16 and gateway.call(lambda: _in_flight(gateway, b.url)) >= 1,
            timeout_s=60,
        )
        in_flight_at_signal = gateway.call(lambda: _in_flight(gateway, b.url))
        served_by_b = attempts(gateway, b.url, "ok")
        signalled = time.monotonic()
        b.process.send_signal(signal.SIGTERM)
        wait_until(lambda: httpx.get(b.url + "/health").status_code == 503, timeout_s=5)
        live_while_draining = httpx.get(b.url + "/tidegate/live").status_code
        code = b.process.wait(timeout=90)
        drain_s = time.monotonic() - signalled
        finished_at_exit = len(done)
        # The load goes on, now on A alone.
        wait_until(lambda: len(done) >= finished_at_exit + 16, timeout_s=60)
    finally:
        stop.set()
        for thread in clients:
            thread.join(60)
    assert not failures, failures[:5]
    assert code in (0, -signal.SIGTERM)
    assert live_while_draining == 200
    assert in_flight_at_signal >= 1 and served_by_b >= 1
    log = worker_logs[1].read_text()
    assert "(stop_idle)" in log, "B was stopped before its in-flight requests finished"
    assert drain_s < 60
    print(
        f"\ndrained B in {drain_s:.1f}s with {in_flight_at_signal} in flight; "
        f"{len(done)} requests, {attempts(gateway, b.url, 'http_503'):g} retried 503s"
    )


def _one_request(client: openai.OpenAI, *, stream: bool, tag: str) -> int | None:
    messages: Any = [{"role": "user", "content": f"client {tag}"}]
    if not stream:
        reply = client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=16, extra_body=IGNORE_EOS
        )
        return reply.usage.completion_tokens if reply.usage else None
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=IGNORE_EOS,
        )
    )
    usage = chunks[-1].usage
    return usage.completion_tokens if usage else None


def _in_flight(gateway: RunningGateway, url: str) -> int:
    return gateway.app.services.pool.in_flight.get(url, 0)
