"""Session and prefix affinity through the running gateway (the ``affinity`` profile)."""

from __future__ import annotations

import httpx
import pytest

from tests.harness import MODEL, run_gateway, sim_workers


@pytest.fixture(scope="module")
def gateway():
    with (
        sim_workers(3) as workers,
        run_gateway(workers, scheduler={"default_profile": "affinity"}) as gw,
    ):
        yield gw


def served_by(gateway, send) -> str:
    """Which worker served the request ``send`` makes (from the gateway's attempt counts)."""
    urls = [e.url for e in gateway.app.services.pool.snapshot.endpoints]
    before = {u: gateway.metric("tidegate_upstream_attempts_total", {"endpoint": u}) for u in urls}
    send()
    after = {u: gateway.metric("tidegate_upstream_attempts_total", {"endpoint": u}) for u in urls}
    (url,) = [u for u in urls if after[u] > before[u]]
    return url


def chat(gateway, content: str, **extra) -> None:
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 2,
            **extra.pop("body", {}),
        },
        **extra,
    )
    assert response.status_code == 200


def test_a_session_sticks_to_one_worker(gateway):
    homes = {
        served_by(
            gateway, lambda i=i: chat(gateway, f"turn {i}", headers={"x-session-id": "alice"})
        )
        for i in range(6)
    }
    assert len(homes) == 1


def test_the_user_field_is_a_session_key_too(gateway):
    homes = {
        served_by(gateway, lambda i=i: chat(gateway, f"q{i}", body={"user": "bob"}))
        for i in range(6)
    }
    assert len(homes) == 1


def test_a_shared_long_prefix_sticks_and_different_prefixes_spread(gateway):
    system = "You are a careful assistant. " * 60
    same = {
        served_by(gateway, lambda i=i: chat(gateway, system + f" question {i}")) for i in range(5)
    }
    assert len(same) == 1
    spread = {served_by(gateway, lambda i=i: chat(gateway, f"{i} " * 600)) for i in range(12)}
    assert len(spread) >= 2
