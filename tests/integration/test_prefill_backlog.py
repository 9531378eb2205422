"""The bound on each worker's prefill backlog, through the running gateway: requests beyond
it wait at the gate and all complete, routing skips a full worker, and every way an
attempt ends gives its prompt tokens back.

Streams go to ``/v1/completions``: the simulator opens a chat stream with its role event
before the first token, where vLLM sends both together."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.harness import (
    MODEL,
    run_gateway,
    serve_in_thread,
    sim_workers,
    unavailable_worker,
    until,
)

TTFT_S = 1.0
PROMPT = "x" * 400  # the gateway estimates 100 tokens
TOKENS = 100
BOUNDED = {"max_prefill_tokens_per_worker": TOKENS}


def completion(*, stream: bool, prompt: str = PROMPT) -> dict[str, object]:
    return {"model": MODEL, "prompt": prompt, "max_tokens": 3, "stream": stream}


def backlog(gw) -> dict[str, int]:
    return dict(gw.call(lambda: dict(gw.app.services.pool.prefill_tokens)))


def queued(gw) -> int:
    return int(gw.call(lambda: sum(gw.app.services.gate.queued().values())))


@pytest.fixture(scope="module")
def slow():
    """Workers that take a second to their first token."""
    with sim_workers(2, args=["--ttft-ms", str(TTFT_S * 1000), "--token-delay-ms", "1"]) as w:
        yield w


def test_requests_beyond_the_bound_wait_at_the_gate_and_all_complete(slow):
    worker = slow[0].url
    # No probe round during the test: only first tokens and completions release requests.
    quiet = {"probe_interval_s": 60, "stale_after_s": 120}
    with run_gateway(slow[:1], admission=BOUNDED, discovery=quiet) as gw:
        url = gw.base_url + "/completions"
        long = {**completion(stream=True), "max_tokens": 3000, "ignore_eos": True}

        async def scenario() -> tuple[list[httpx.Response], float]:
            async with httpx.AsyncClient(timeout=60) as client:
                start = time.monotonic()
                first = asyncio.create_task(client.post(url, json=long))
                await until(lambda: backlog(gw) == {worker: TOKENS})
                assert gw.metric("tidegate_prefill_backlog_tokens", {"endpoint": worker}) == TOKENS
                held = [
                    asyncio.create_task(client.post(url, json=completion(stream=True)))
                    for _ in range(2)
                ]
                await until(lambda: queued(gw) == 2)
                # The first request's first token lets the next one in while it streams on.
                await until(lambda: queued(gw) < 2)
                assert not first.done()
                responses = await asyncio.gather(*held)
                took = time.monotonic() - start
                return [*responses, await first], took

        responses, took = asyncio.run(scenario())
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert all(r.text.rstrip().endswith("data: [DONE]") for r in responses)
        # each was let in only after the previous one's first token
        assert took >= 3 * TTFT_S * 0.9
        assert gw.metric("tidegate_admission_wait_seconds_count") >= 2
        assert backlog(gw) == {worker: 0} and queued(gw) == 0


def test_routing_skips_a_worker_at_the_bound(slow):
    urls = [w.url for w in slow]
    # Session affinity alone: both requests of one session have the same home worker.
    sticky = {"profiles": {"sticky": {"scorers": [{"plugin": "session"}]}}}
    scheduler = {**sticky, "default_profile": "sticky"}
    with run_gateway(slow, admission=BOUNDED, scheduler=scheduler) as gw:
        url = gw.base_url + "/completions"
        session = {"x-session-id": "one"}

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30, headers=session) as client:
                sent = [
                    asyncio.create_task(client.post(url, json=completion(stream=True)))
                    for _ in range(2)
                ]
                await until(lambda: backlog(gw) == dict.fromkeys(urls, TOKENS))
                assert queued(gw) == 0
                return await asyncio.gather(*sent)

        assert [r.status_code for r in asyncio.run(scenario())] == [200, 200]
        assert backlog(gw) == dict.fromkeys(urls, 0)


def test_unset_the_backlog_is_only_counted(slow):
    worker = slow[0].url
    with run_gateway(slow[:1]) as gw:
        url = gw.base_url + "/completions"

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                sent = [
                    asyncio.create_task(client.post(url, json=completion(stream=True)))
                    for _ in range(3)
                ]
                await until(lambda: backlog(gw) == {worker: 3 * TOKENS})  # all three at once
                assert queued(gw) == 0
                return await asyncio.gather(*sent)

        assert [r.status_code for r in asyncio.run(scenario())] == [200, 200, 200]
        assert backlog(gw) == {worker: 0}


@pytest.mark.parametrize("stream", [True, False])
def test_the_backlog_is_given_back_after_success(slow, stream):
    with run_gateway(slow[:1], admission=BOUNDED) as gw:
        response = httpx.post(
            gw.base_url + "/completions", json=completion(stream=stream), timeout=30
        )
        assert response.status_code == 200
        assert backlog(gw) == {slow[0].url: 0}


def test_the_backlog_is_given_back_after_a_worker_error(slow):
    with run_gateway(slow[:1], admission=BOUNDED) as gw:
        body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "n": 2}
        response = httpx.post(gw.base_url + "/chat/completions", json=body, timeout=30)
        assert response.status_code >= 400
        assert backlog(gw) == {slow[0].url: 0}


def test_the_backlog_is_given_back_after_a_first_byte_timeout(slow):
    with run_gateway(slow[:1], admission=BOUNDED, timeouts={"first_byte_s": 0.2}) as gw:
        response = httpx.post(gw.base_url + "/completions", json=completion(stream=True))
        assert response.status_code == 504
        assert backlog(gw) == {slow[0].url: 0}


def test_the_backlog_is_given_back_when_a_503_is_retried_elsewhere(slow):
    with (
        serve_in_thread(unavailable_worker) as (bad_url, _),
        run_gateway([bad_url, slow[0].url], admission=BOUNDED) as gw,
    ):
        for _ in range(4):
            response = httpx.post(
                gw.base_url + "/completions", json=completion(stream=True), timeout=30
            )
            assert response.status_code == 200
        assert gw.metric("tidegate_upstream_attempts_total", {"endpoint": bad_url}) >= 1
        assert backlog(gw) == {bad_url: 0, slow[0].url: 0}


@pytest.mark.parametrize("stream", [True, False])
def test_the_backlog_is_given_back_when_the_client_leaves_during_prefill(slow, stream):
    worker = slow[0].url
    with run_gateway(slow[:1], admission=BOUNDED) as gw:

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                sent = asyncio.create_task(
                    client.post(gw.base_url + "/completions", json=completion(stream=stream))
                )
                await until(lambda: backlog(gw) == {worker: TOKENS})
                sent.cancel()  # closes the connection: the gateway sees the client leave
                with pytest.raises(asyncio.CancelledError):
                    await sent
            await until(lambda: backlog(gw) == {worker: 0})
            in_flight = gw.call(lambda: dict(gw.app.services.pool.in_flight))
            assert in_flight == {worker: 0}

        asyncio.run(scenario())
        assert gw.metric("tidegate_requests_total", {"status": "499"}) == 1
