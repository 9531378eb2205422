"""Admission control through the running gateway: hold, order, and shed under saturation."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.harness import MODEL, run_gateway, sim_workers, until

SLOW = ["--max-num-seqs", "2", "--token-delay-ms", "30"]
# No headroom: every class is held at the same count, so the queue's order shows.
ADMISSION = {
    "max_running_per_worker": 2,
    "queue_threshold": 1,
    "max_queue": 4,
    "max_wait_s": 20,
    "priority_headroom": {},
}


def body(tokens: int) -> dict[str, object]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": tokens,
        "ignore_eos": True,
    }


def queued(gw) -> int:
    return int(gw.call(lambda: sum(gw.app.services.gate.queued().values())))


@pytest.fixture(scope="module")
def workers():
    with sim_workers(1, args=SLOW) as w:
        yield w


def test_sheddable_requests_get_429_fast_when_the_pool_is_full(workers):
    with run_gateway(workers, admission=ADMISSION) as gw:
        url = gw.base_url + "/chat/completions"

        async def scenario() -> tuple[httpx.Response, float, list[httpx.Response]]:
            async with httpx.AsyncClient(timeout=30) as client:
                busy = [asyncio.create_task(client.post(url, json=body(30))) for _ in range(3)]
                await until(lambda: gw.call(lambda: gw.app.services.gate.saturation(MODEL, 1)) >= 1)
                start = time.perf_counter()
                shed = await client.post(url, json=body(1), headers={"x-priority": "sheddable"})
                took = time.perf_counter() - start
                return shed, took, await asyncio.gather(*busy)

        shed, took, busy = asyncio.run(scenario())
        assert shed.status_code == 429
        assert shed.json()["error"]["code"] == "overloaded"
        assert int(shed.headers["retry-after"]) >= 1
        assert all(r.status_code == 200 for r in busy)
        print(f"shed in {took * 1000:.1f} ms")
        assert gw.metric("tidegate_admission_shed_total", {"reason": "sheddable"}) == 1


def test_held_requests_are_served_by_priority_and_the_queue_is_bounded(workers):
    with run_gateway(workers, admission=ADMISSION) as gw:
        url = gw.base_url + "/chat/completions"
        finished: list[str] = []

        async def send(client: httpx.AsyncClient, name: str, priority: str) -> httpx.Response:
            response = await client.post(url, json=body(2), headers={"x-priority": priority})
            finished.append(name)
            return response

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                busy = [asyncio.create_task(client.post(url, json=body(20))) for _ in range(3)]
                await until(lambda: gw.call(lambda: gw.app.services.gate.saturation(MODEL, 1)) >= 1)
                held = [asyncio.create_task(send(client, f"std{i}", "standard")) for i in range(3)]
                await until(lambda: queued(gw) == 3)
                critical = asyncio.create_task(send(client, "crit", "critical"))
                await until(lambda: queued(gw) == 4)
                overflow = await client.post(url, json=body(1))
                return [overflow, *await asyncio.gather(*busy, *held, critical)]

        overflow, *served = asyncio.run(scenario())
        assert overflow.status_code == 429 and "queue full" in overflow.json()["error"]["message"]
        assert all(r.status_code == 200 for r in served)
        assert finished.index("crit") < finished.index("std1")
        assert gw.metric("tidegate_admission_wait_seconds_count") >= 4
        assert "tidegate_admission_queued_requests" in httpx.get(gw.url + "/metrics").text


def test_unknown_priority_is_a_400(workers):
    with run_gateway(workers) as gw:
        response = httpx.post(
            gw.base_url + "/chat/completions", json=body(1), headers={"x-priority": "urgent!!"}
        )
        assert response.status_code == 400 and response.json()["error"]["param"] == "x-priority"


def test_a_critical_request_uses_its_headroom_while_standard_ones_are_held():
    """The engine runs 4 at once; the gate lets standard requests run 2 (plus the one
    queued request that fills a worker) and critical ones 2 more, so a critical request
    starts at once while a standard one waits at the gate."""
    admission = {**ADMISSION, "priority_headroom": {2: 2}}
    with (
        sim_workers(1, args=["--max-num-seqs", "4", "--token-delay-ms", "30"]) as roomy,
        run_gateway(roomy, admission=admission) as gw,
    ):
        url = gw.base_url + "/chat/completions"
        finished: list[str] = []

        async def send(client: httpx.AsyncClient, name: str, tokens: int, priority: str):
            response = await client.post(url, json=body(tokens), headers={"x-priority": priority})
            finished.append(name)
            return response

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                busy = [
                    asyncio.create_task(send(client, f"busy{i}", 40, "standard")) for i in range(3)
                ]
                saturation = gw.app.services.gate.saturation
                await until(lambda: gw.call(lambda: saturation(MODEL, 1)) >= 1)
                assert gw.call(lambda: saturation(MODEL, 2)) < 1
                held = asyncio.create_task(send(client, "held", 2, "standard"))
                await until(lambda: queued(gw) == 1)
                critical = await send(client, "critical", 2, "critical")
                assert queued(gw) == 1  # served while the standard one is still held
                return [critical, *await asyncio.gather(*busy, held)]

        responses = asyncio.run(scenario())
        assert all(r.status_code == 200 for r in responses)
        assert finished[0] == "critical"
