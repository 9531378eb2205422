"""The gateway routes with slow start: its decisions see when each worker became healthy
and the configured window (the weighing itself is tested in tests/scheduler)."""

from __future__ import annotations

import random

import httpx

from scheduler.framework import Decision, RoutingContext
from tests.harness import MODEL, run_gateway, sim_workers


class Recording:
    """Wraps the gateway's router and keeps the contexts it is asked to route."""

    def __init__(self, router) -> None:
        self.router = router
        self.contexts: list[RoutingContext] = []

    def route(self, ctx: RoutingContext, rng: random.Random, profile=None) -> Decision:
        self.contexts.append(ctx)
        return self.router.route(ctx, rng, profile)


def test_decisions_see_the_window_and_each_workers_healthy_since():
    with (
        sim_workers(2) as workers,
        run_gateway(workers, scheduler={"slow_start_s": 42.0}) as gw,
    ):
        proxy = gw.app.services.proxy
        recording = Recording(proxy._router)
        proxy._router = recording
        response = httpx.post(
            gw.base_url + "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        )
        assert response.status_code == 200
        (ctx,) = recording.contexts
        assert ctx.slow_start_s == 42.0
        healthy = [e for e in ctx.snapshot.endpoints if e.healthy]
        assert len(healthy) == 2
        assert all(e.healthy_since is not None and e.healthy_since <= ctx.now for e in healthy)
