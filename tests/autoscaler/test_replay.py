"""The gateway's routing and admission inside the virtual-time replay."""

from __future__ import annotations

from autoscaler.replay.baselines import CacheAware, RoundRobin
from autoscaler.replay.fleet import GatewayRoute, summarize
from autoscaler.replay.gated import GatedRequest, run_gated
from scheduler.admission import AdmissionQueue, SaturationPolicy
from scheduler.config import SchedulerSettings, build_router
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import builtin_registry
from workers.sim.replay import ReplayRequest, VirtualEngine, run_fleet

PROFILE = builtin_registry().get("llama3-8b-h100")


def engines(n: int) -> list[VirtualEngine]:
    return [VirtualEngine(PROFILE, EngineConfig()) for _ in range(n)]


def burst(
    n: int, *, prompt: int = 2000, output: int = 50, shared: bool = False, every_s: float = 0.0
) -> list[ReplayRequest]:
    return [
        ReplayRequest(
            f"r{i}",
            i * every_s,
            prompt,
            output,
            trace_block_ids=(0, 1, 2, 100 + i) if shared else None,
        )
        for i in range(n)
    ]


def test_every_request_is_served_and_token_accounting_returns_to_zero():
    route = GatewayRoute(build_router(SchedulerSettings(default_profile="prefix-aware")), 4)
    report = run_fleet(engines(4), burst(40, shared=True, every_s=0.01), route, route.finished)
    assert len(report.records) == 40
    assert route.tokens_in_flight() == [0, 0, 0, 0]
    result = summarize("x", report, route, ttft_slo_s=2.0)
    assert result.prefix_hit_rate > 0.3  # shared leading blocks are found in the cache


def test_prefix_routing_beats_round_robin_on_hits_for_shared_prefixes():
    requests = [
        ReplayRequest(f"r{i}", i * 0.05, 4096, 20, trace_block_ids=(i % 5, 1000 + i % 5, 2000 + i))
        for i in range(60)
    ]
    results = {}
    for name, router in (
        ("rr", RoundRobin()),
        ("cache-aware", CacheAware()),
        ("tidegate", build_router(SchedulerSettings(default_profile="prefix-aware"))),
    ):
        route = GatewayRoute(router, 4)
        results[name] = summarize(
            name, run_fleet(engines(4), requests, route, route.finished), route, 2.0
        )
    assert results["tidegate"].prefix_hit_rate > results["rr"].prefix_hit_rate
    assert results["cache-aware"].prefix_hit_rate > results["rr"].prefix_hit_rate


def test_gate_holds_by_priority_and_sheds_sheddable_when_full():
    requests = burst(30, prompt=6000, output=200)
    gated = [
        GatedRequest(r, priority=(2 if i >= 25 else 0 if i % 7 == 3 else 1))
        for i, r in enumerate(requests)
    ]
    route = GatewayRoute(build_router(SchedulerSettings()), 1)
    policy = SaturationPolicy(queue_threshold=1, max_running=4)
    queue = AdmissionQueue(max_queue=1000, ttft_slo_s=1e9)
    report = run_gated(engines(1), gated, route, queue, policy, shed_at_or_below=0)
    shed = {g.request.request_id for g, _, _ in report.shed}
    served = {r.request_id for r in report.records}
    assert shed and all(reason == "sheddable" for _, reason, _ in report.shed)
    assert shed | served == {r.request_id for r in requests} and not shed & served
    first = {r.request_id: r.first_token_at for r in report.records}
    critical = [first[f"r{i}"] for i in range(25, 30)]
    late_standard = [first[f"r{i}"] for i in range(15, 25) if f"r{i}" in first]
    assert max(critical) < max(late_standard)  # arrived last, served before held standards
