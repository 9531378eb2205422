"""Two gateway replicas exchanging their prefix index through a real Redis server.

A prefix routed through replica A is routed by replica B to the same worker once the
exchange has delivered A's decision (B's merged-records metric says when); with Redis
stopped or unreachable, requests are still served on the local index.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import MODEL, RunningGateway, run_gateway, sim_workers, wait_until
from tests.redis_server import RedisServer, redis_server
from tidegate.localproc import LocalWorker, free_port

MERGED = "tidegate_prefix_exchange_merged_records_total"
CONNECTED = "tidegate_prefix_exchange_connected"
ERRORS = "tidegate_prefix_exchange_errors_total"


@pytest.fixture(scope="module")
def workers() -> Iterator[list[LocalWorker]]:
    with sim_workers(3) as running:
        yield running


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@contextlib.contextmanager
def replica(workers: list[LocalWorker], redis_url: str, name: str) -> Iterator[RunningGateway]:
    with run_gateway(
        workers,
        scheduler={"default_profile": "prefix-aware"},
        redis={"url": redis_url, "connect_timeout_s": 0.5},
        prefix_exchange={
            "enabled": True,
            "interval_s": 0.05,
            "replica_id": name,
            "reconnect_max_s": 0.2,
        },
    ) as gateway:
        yield gateway


def chat(gateway: RunningGateway, content: str) -> None:
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 2},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def served_by(gateway: RunningGateway, content: str) -> str:
    """Which worker served ``content`` (from the gateway's attempt counts)."""
    urls = [e.url for e in gateway.app.services.pool.snapshot.endpoints]

    def attempts() -> dict[str, float]:
        name = "tidegate_upstream_attempts_total"
        return {u: gateway.metric(name, {"endpoint": u}) for u in urls}

    before = attempts()
    chat(gateway, content)
    after = attempts()
    (url,) = [u for u in urls if after[u] > before[u]]
    return url


def prompt(topic: int) -> str:
    return f"Topic {topic}. " + "You are a careful assistant for this topic. " * 40


def test_a_prefix_routed_by_one_replica_is_routed_alike_by_the_other(workers, redis):
    topics = range(6)
    with replica(workers, redis.url, "a") as a, replica(workers, redis.url, "b") as b:
        wait_until(lambda: a.metric(CONNECTED) == 1 and b.metric(CONNECTED) == 1, 10)
        homes = {t: served_by(a, prompt(t)) for t in topics}
        assert len(set(homes.values())) >= 2  # the prefixes spread: matching is no accident
        wait_until(lambda: b.metric(MERGED) >= len(topics), 10)
        assert a.metric(MERGED) == 0  # a replica skips its own batches on the channel
        assert {t: served_by(b, prompt(t)) for t in topics} == homes


def test_requests_are_served_while_redis_is_unreachable(workers):
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    with replica(workers, nobody, "alone") as gateway:
        wait_until(lambda: gateway.metric(ERRORS) >= 1, 10)
        for topic in range(3):
            chat(gateway, prompt(topic))
        assert gateway.metric(CONNECTED) == 0


def test_a_replica_rides_out_a_redis_restart(workers, redis):
    with replica(workers, redis.url, "a") as a, replica(workers, redis.url, "b") as b:
        wait_until(lambda: a.metric(CONNECTED) == 1 and b.metric(CONNECTED) == 1, 10)
        redis.stop()
        wait_until(lambda: a.metric(CONNECTED) == 0, 10)
        for topic in range(3):
            chat(a, prompt(100 + topic))  # served on the local index alone
        assert a.metric(ERRORS) >= 1
        redis.start()
        wait_until(lambda: a.metric(CONNECTED) == 1 and b.metric(CONNECTED) == 1, 10)
        chat(a, prompt(200))
        wait_until(lambda: b.metric(MERGED) >= 1, 10)
