"""The two signal sources over real HTTP: scraping a running gateway and simulated workers,
and a Prometheus query API stand-in on loopback."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

import httpx
import pytest
from aiohttp import web

from autoscaler.policy.observation import Slo, miss_share
from autoscaler.signals.prometheus import PrometheusSource
from autoscaler.signals.promql import model_queries
from autoscaler.signals.scrape import ScrapeSource
from tests.harness import MODEL, run_gateway, sim_workers


@pytest.fixture(scope="module")
def gateway_and_workers() -> Any:
    args = ["--ttft-ms", "40", "--token-delay-ms", "2"]
    with sim_workers(2, args=args) as workers, run_gateway(workers) as gateway:
        yield gateway, workers


def stream(base_url: str, n: int) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 8,
        "stream": True,
    }
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(n):
            with client.stream("POST", "/chat/completions", json=body) as response:
                assert response.status_code == 200
                for _ in response.iter_lines():
                    pass


async def test_scraping_a_running_gateway_and_its_workers(gateway_and_workers: Any) -> None:
    gateway, workers = gateway_and_workers
    source = ScrapeSource([gateway.url], [w.url for w in workers], window_s=120)
    try:
        first = (await source.observe({MODEL: 2}, now=1000.0))[MODEL]
        assert first.arrival_rps is None and first.fresh  # no baseline yet: no rate
        assert first.queued == 0  # both workers answered, nothing waiting
        await asyncio.to_thread(stream, gateway.base_url, 12)
        obs = (await source.observe({MODEL: 2}, now=1030.0))[MODEL]
    finally:
        await source.close()
    assert obs.fresh and obs.ready_replicas == 2 and obs.at == 1030.0
    assert obs.arrival_rps == pytest.approx(12 / 30)  # the controller's clock sets the span
    # Percentiles of the gateway's own histograms (their math is tested table-driven), in
    # seconds; the bounds are loose because a loaded machine slows the workers too.
    assert obs.ttft_p95_s is not None and 0 < obs.ttft_p95_s <= 5.0
    assert obs.itl_p95_s is not None and 0 < obs.itl_p95_s <= 1.0
    # The window's requests, one count each by TTFT and by their mean inter-token latency.
    assert obs.ttft_buckets[-1] == (math.inf, 12.0) and obs.itl_buckets[-1] == (math.inf, 12.0)
    assert miss_share(obs, Slo(ttft_p95_s=60.0, itl_p95_s=60.0)) == 0.0


async def test_a_gateway_that_does_not_answer_makes_the_signals_stale(
    gateway_and_workers: Any,
) -> None:
    gateway, _ = gateway_and_workers
    source = ScrapeSource([gateway.url, "http://127.0.0.1:9"], window_s=120, timeout_s=1)
    try:
        await source.observe({MODEL: 2}, now=0.0)
        obs = (await source.observe({MODEL: 2}, now=15.0))[MODEL]
    finally:
        await source.close()
    assert obs.fresh is False
    assert obs.queued == 0.0  # the gateway reports nothing held; no worker queues listed


@dataclass(frozen=True)
class Failure:
    status: int


@pytest.fixture
async def prometheus() -> AsyncIterator[tuple[str, list[str], dict[str, Any]]]:
    """A query API that answers from ``answers`` (expression -> value, Failure or None)."""
    asked: list[str] = []
    answers: dict[str, Any] = {}

    async def query(request: web.Request) -> web.Response:
        expr = request.query["query"]
        asked.append(expr)
        value = answers.get(expr)
        if isinstance(value, Failure):
            return web.json_response({"status": "error", "error": "boom"}, status=value.status)
        if isinstance(value, dict):  # a sum by (le): one series per bucket
            result = [{"metric": {"le": le}, "value": [1.7e9, str(v)]} for le, v in value.items()]
        else:
            result = [] if value is None else [{"metric": {}, "value": [1.7e9, str(value)]}]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/", asked, answers
    finally:
        await runner.cleanup()


async def test_prometheus_signals_per_model(
    prometheus: tuple[str, list[str], dict[str, Any]],
) -> None:
    url, asked, answers = prometheus
    q = model_queries("llama", 60)
    answers.update({q.arrival: 12.5, q.ttft: 0.8, q.itl: math.nan, q.waiting: 3, q.held: 4})
    # 10 req/s: 9 within 1 s, 1 over; by mean ITL, half within 0.04 s and all within 0.06 s
    answers[q.ttft_buckets] = {"0.5": 6.0, "1.0": 9.0, "+Inf": 10.0}
    answers[q.tpot_buckets] = {"0.04": 5.0, "0.06": 10.0, "+Inf": 10.0}
    source = PrometheusSource(url, window_s=60)
    try:
        seen = await source.observe({"llama": 3, "qwen": 1}, now=50.0)
    finally:
        await source.close()
    llama, qwen = seen["llama"], seen["qwen"]
    assert (llama.arrival_rps, llama.ttft_p95_s, llama.itl_p95_s, llama.queued) == (
        12.5,
        0.8,
        None,
        7,
    )
    assert (llama.fresh, llama.ready_replicas, llama.at) == (True, 3, 50.0)
    assert llama.ttft_buckets == ((0.5, 6.0), (1.0, 9.0), (math.inf, 10.0))
    # over 1 s: 10%; over 50 ms by mean ITL: half of the 0.04-0.06 bucket, 25%
    assert miss_share(llama, Slo(ttft_p95_s=1.0, itl_p95_s=0.05)) == pytest.approx(0.35)
    assert (qwen.arrival_rps, qwen.queued, qwen.fresh) == (None, None, True)  # no series yet
    assert (qwen.ttft_buckets, qwen.itl_buckets) == ((), ())
    expected = {getattr(m, f.name) for m in (q, model_queries("qwen", 60)) for f in fields(m)}
    assert set(asked) == expected


@pytest.mark.parametrize(
    ("down", "fail_arrival", "fresh"),
    [(0.0, False, True), (1.0, False, False), (Failure(400), False, False), (None, True, False)],
)
async def test_a_failed_query_or_a_gateway_out_of_sight_is_stale(
    prometheus: tuple[str, list[str], dict[str, Any]], down: Any, fail_arrival: bool, fresh: bool
) -> None:
    url, _, answers = prometheus
    q = model_queries("llama", 120)
    down_query = 'count(up{job="tidegate-gateway"} == 0)'
    answers.update({q.arrival: Failure(500) if fail_arrival else 2.0, down_query: down})
    source = PrometheusSource(url, down_query=down_query if down is not None else None)
    try:
        obs = (await source.observe({"llama": 1}, now=0.0))["llama"]
    finally:
        await source.close()
    assert obs.fresh is fresh


async def test_an_unreachable_prometheus_is_stale_not_an_error() -> None:
    source = PrometheusSource("http://127.0.0.1:9", timeout_s=1)
    try:
        obs = (await source.observe({"llama": 2}, now=0.0))["llama"]
    finally:
        await source.close()
    assert (obs.fresh, obs.arrival_rps, obs.ready_replicas) == (False, None, 2)
