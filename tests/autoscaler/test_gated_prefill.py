"""The replay's gate with a bound on each worker's prefill backlog."""

from __future__ import annotations

import pytest

from autoscaler.replay.fleet import GatewayRoute
from autoscaler.replay.gated import GatedRequest, RoomRouter, run_gated
from scheduler.admission import AdmissionQueue, SaturationPolicy
from scheduler.config import SchedulerSettings, build_router
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import builtin_registry
from workers.sim.replay import ReplayRequest, VirtualEngine

PROFILE = builtin_registry().get("llama3-8b-h100")


def engines(n: int) -> list[VirtualEngine]:
    config = EngineConfig(scheduling_policy="priority")
    return [VirtualEngine(PROFILE, config) for _ in range(n)]


def run(requests: list[GatedRequest], workers: int, policy: SaturationPolicy):
    route = GatewayRoute(RoomRouter(build_router(SchedulerSettings())), workers)
    queue = AdmissionQueue(max_queue=1000, ttft_slo_s=1e9)
    return run_gated(engines(workers), requests, route, queue, policy)


def burst(n: int, prompt: int, *, critical_from: int | None = None) -> list[GatedRequest]:
    return [
        GatedRequest(
            ReplayRequest(f"r{i}", i * 0.001, prompt, 40),
            priority=2 if critical_from is not None and i >= critical_from else 1,
        )
        for i in range(n)
    ]


def test_the_backlog_bound_spaces_prefills_and_everyone_is_served():
    requests = burst(12, 2000)
    loose = run(requests, 1, SaturationPolicy(queue_threshold=1e9))
    bounded = run(requests, 1, SaturationPolicy(queue_threshold=1e9, max_prefill_tokens=2000))
    assert len(loose.records) == len(bounded.records) == 12
    # Unbounded, the burst is prefilled four to a step; bounded, one at a time (a request
    # is let in only once the one before it has its first token).
    starts = sorted(r.scheduled_at or 0.0 for r in bounded.records)
    firsts = sorted(r.first_token_at or 0.0 for r in bounded.records)
    assert all(start >= first for start, first in zip(starts[1:], firsts, strict=False))
    assert len({r.scheduled_at for r in loose.records}) < 12


def test_critical_prompts_wait_out_no_standard_prefill_backlog():
    # Unbounded, the long standard prompts are all sent at once and the critical ones
    # join a step after their prefill; bounded, the standard ones are held at the gate and
    # the critical ones, first in its queue, start as soon as a worker has room.
    requests = burst(6, 6000) + [
        GatedRequest(ReplayRequest(f"c{i}", 0.01 + i * 0.001, 500, 10), priority=2)
        for i in range(2)
    ]
    policy = SaturationPolicy(queue_threshold=1e9, max_prefill_tokens=6000)
    report = run(requests, 2, policy)
    first = {r.request_id: r.first_token_at or 0.0 for r in report.records}
    assert len(first) == 8
    unbounded = run(requests, 2, SaturationPolicy(queue_threshold=1e9))
    before = {r.request_id: r.first_token_at or 0.0 for r in unbounded.records}
    assert max(first["c0"], first["c1"]) < max(before["c0"], before["c1"])


def test_a_backlog_bound_needs_a_room_router():
    route = GatewayRoute(build_router(SchedulerSettings()), 1)
    queue = AdmissionQueue(max_queue=10, ttft_slo_s=1e9)
    with pytest.raises(ValueError, match="RoomRouter"):
        run_gated(engines(1), burst(1, 100), route, queue, SaturationPolicy(max_prefill_tokens=10))
