"""Scale to zero through the running gateway: a model with no worker holds its requests
until a worker for it comes up, answers 503 when none comes within the hold timeout, and
frees the place of a client that leaves. Workers are real simulator processes started on
the address the gateway was told about, as a new replica would be."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.harness import MODEL, RunningGateway, run_gateway, until
from tidegate.localproc import LocalWorker, free_port, start_sim_worker, stop_all, wait_healthy

OTHER = "plain-model"  # configured, not scaled to zero


def body(model: str = MODEL, tokens: int = 3) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "wake up"}],
        "max_tokens": tokens,
    }


def scale_to_zero(hold_timeout_s: float) -> dict[str, object]:
    return {"scale_to_zero": {"models": [MODEL], "hold_timeout_s": hold_timeout_s}}


def held(gw: RunningGateway) -> int:
    return int(gw.call(lambda: gw.app.services.gate.queued()[MODEL]))


def test_held_requests_are_served_once_a_worker_comes_up() -> None:
    address = f"http://127.0.0.1:{free_port()}"  # where the first replica will listen
    workers: list[LocalWorker] = []
    with run_gateway([address], admission=scale_to_zero(60), models=[OTHER]) as gw:
        url = gw.base_url + "/chat/completions"
        listed = httpx.get(gw.base_url + "/models").json()["data"]
        assert MODEL in {card["id"] for card in listed}  # discoverable at zero replicas
        assert httpx.get(gw.url + "/readyz").status_code == 200

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as client:
                waiting = [asyncio.create_task(client.post(url, json=body())) for _ in range(3)]
                await until(lambda: held(gw) == 3)
                assert gw.metric("tidegate_admission_queued_requests", {"model": MODEL}) == 3
                assert not any(task.done() for task in waiting)
                workers.append(start_sim_worker(MODEL, port=int(address.rsplit(":", 1)[1])))
                return await asyncio.gather(*waiting)

        try:
            answers = asyncio.run(scenario())
        finally:
            stop_all(workers)
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert all(r.json()["choices"][0]["message"]["content"] for r in answers)
        assert held(gw) == 0
        assert gw.metric("tidegate_admission_queued_requests", {"model": MODEL}) == 0
        assert gw.metric("tidegate_requests_total", {"model": MODEL, "status": "200"}) == 3


def test_no_replica_within_the_hold_timeout_is_a_503_with_retry_after() -> None:
    address = f"http://127.0.0.1:{free_port()}"  # nothing will ever listen here
    with run_gateway([address], admission=scale_to_zero(0.3)) as gw:
        started = time.monotonic()
        response = httpx.post(gw.base_url + "/chat/completions", json=body(), timeout=30)
        waited = time.monotonic() - started
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "model_scaled_to_zero" and error["type"] == "server_error"
        assert "scaled to zero" in error["message"] and "0.3s" in error["message"]
        assert response.headers["retry-after"] == "10"
        assert waited >= 0.3  # it was held, not refused at once
        assert gw.metric("tidegate_admission_shed_total", {"reason": "scale_to_zero_timeout"}) == 1
        assert held(gw) == 0


def test_a_client_leaving_while_held_gives_up_its_place() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    with run_gateway([address], admission=scale_to_zero(60)) as gw:
        url = gw.base_url + "/chat/completions"

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=60) as client:
                leaving = asyncio.create_task(client.post(url, json=body()))
                staying = asyncio.create_task(client.post(url, json=body()))
                await until(lambda: held(gw) == 2)
                leaving.cancel()  # closes its connection: the gateway sees a disconnect
                await until(lambda: held(gw) == 1)
                staying.cancel()
                await until(lambda: held(gw) == 0)

        asyncio.run(scenario())
        assert gw.metric("tidegate_requests_total", {"model": MODEL, "status": "499"}) == 2


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [(OTHER, 503, "no_healthy_worker"), ("nobody-serves-this", 404, "model_not_found")],
)
def test_models_not_scaled_to_zero_are_answered_at_once(model: str, status: int, code: str) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    with run_gateway([address], admission=scale_to_zero(60), models=[OTHER]) as gw:
        response = httpx.post(gw.base_url + "/chat/completions", json=body(model), timeout=5)
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        assert held(gw) == 0


def test_a_worker_discovered_later_releases_held_requests() -> None:
    """Discovery (not a probe round) bringing the first replica wakes the held requests."""
    with run_gateway([], admission=scale_to_zero(60), discovery={"probe_interval_s": 60}) as gw:
        url = gw.base_url + "/chat/completions"
        worker = start_sim_worker(MODEL)
        try:
            wait_healthy([worker], timeout_s=30)

            async def scenario() -> httpx.Response:
                async with httpx.AsyncClient(timeout=60) as client:
                    waiting = asyncio.create_task(client.post(url, json=body()))
                    await until(lambda: held(gw) == 1)
                    gw.call(lambda: gw.app.services.set_workers([worker.url]))
                    return await waiting

            answer = asyncio.run(scenario())
        finally:
            stop_all([worker])
        assert answer.status_code == 200
