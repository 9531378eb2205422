"""The what-if end to end on a few hundred requests: the loop, the report, the command."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoscaler.replay.calibrate import Capacity
from autoscaler.replay.cli import main
from autoscaler.replay.cluster import ClusterModel, PoolStatus
from autoscaler.replay.elastic import ElasticRoute
from autoscaler.replay.market import draw_market
from autoscaler.replay.peer_policies import SkyServePolicy
from autoscaler.replay.policies import ClusterView, ScalingPolicy, TidegatePolicy
from autoscaler.replay.pools import PoolSpec, parse_pools
from autoscaler.replay.runner import (
    ReplaySettings,
    Workload,
    build_policy,
    capacity,
    replay_policy,
)
from autoscaler.replay.signals import SignalWindow, SortedWindow
from autoscaler.replay.whatif import run_whatif
from scheduler.config import SchedulerSettings, build_router
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import builtin_registry
from workers.sim.replay import ReplayRequest, VirtualEngine

PROFILE = builtin_registry().get("llama3-8b-h100")
FIELDS = {"policy", "slo_attainment", "cost", "replica_hours", "scaling_actions"}


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """300 requests at about 10 req/s, conversation-like lengths."""
    rng = random.Random(7)
    lines, t = ["arrival_s,input_tokens,output_tokens"], 0.0
    for _ in range(300):
        t += rng.expovariate(10.0)
        lines.append(f"{t:.4f},{rng.randint(200, 2000)},{rng.randint(20, 300)}")
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("policy", ["static", "queue-depth", "kpa", "skyserve", "tidegate"])
def test_every_policy_replays_and_reports(trace, policy):
    settings = ReplaySettings(trace=trace, capacity_rps=5.0, concurrency=20.0)
    workload = Workload(settings)
    result = replay_policy(
        policy, parse_pools(None), settings, workload, capacity(settings, workload)
    )
    assert result.requests == 300 and result.served + result.lost + result.abandoned == 300
    assert 0.9 <= result.slo_attainment <= 1.0
    assert result.cost == pytest.approx(sum(result.cost_by_pool.values())) and result.cost > 0
    hours = sum(result.replica_hours.values())
    assert hours > 0 and result.scenario_hours == pytest.approx(workload.horizon_s / 3600)
    line = json.loads(result.to_json())
    assert line.keys() >= FIELDS and line["policy"] == policy
    assert set(line["replica_hours"]) == {"spot", "on-demand"}


@dataclass
class Fixed:
    """Keeps the given replicas per pool."""

    replicas: dict[str, int]
    name: str = "fixed"
    interval_s: float = 1.0

    def initial(self, pools: Sequence[PoolStatus], replicas: int) -> dict[str, int]:
        return dict(self.replicas)

    def decide(self, view: ClusterView) -> dict[str, int]:
        return dict(self.replicas)


def preempted_run(notice_s: float, *, at: float = 10.0, time_scale: float = 1.0):
    spot = PoolSpec(
        name="spot",
        capacity_type="spot",
        price_per_hour=2.41,
        node_launch_s=1.0,
        image_pull_s=1.0,
        model_load_s=1.0,
        notice_s=notice_s,
        mass_preemptions_at=(at,),
        mass_preemption_share=1.0,
        unavailable_after_mass_s=4.0,
    )
    # Long outputs so requests are still running at the notice; a burst right after it.
    requests = [ReplayRequest(f"r{i}", i * 0.05, 1500, 600) for i in range(300)]
    cluster = ClusterModel([spot], draw_market([spot], 100.0), seed=0)
    route = ElasticRoute(build_router(SchedulerSettings()))
    run = run_whatif(
        requests,
        Fixed({"spot": 2}),
        cluster,
        route,
        lambda: VirtualEngine(PROFILE, EngineConfig()),
        initial_replicas=2,
        time_scale=time_scale,
        horizon_s=60.0 * time_scale,
    )
    return run, cluster


def test_preemption_retries_unstarted_requests_and_loses_what_outlives_the_notice():
    run, cluster = preempted_run(notice_s=0.5)
    assert cluster.preemptions == 2 and cluster.mass_preemptions == 1
    assert cluster.status(60.0)[0].preempted_at == (10.0, 10.0)  # what the planner sees
    assert cluster.status(10.0 + 3601.0)[0].preempted_at == ()  # an hour on: forgotten
    assert run.retried > 0  # queued on the noticed replicas: sent elsewhere (held, then served)
    lost = [o for o in run.outcomes if o.fate == "lost"]
    assert lost and all(o.arrival_s < 10.0 for o in lost)  # running at the notice, cut at 10.5
    assert len(run.outcomes) == 300
    late = [o for o in run.outcomes if o.fate == "served" and o.arrival_s >= 10.0]
    assert late and min(o.ttft_s for o in late) > 0  # served by the replacements


def test_a_long_enough_notice_loses_nothing():
    run, _ = preempted_run(notice_s=120.0)
    assert all(o.fate == "served" for o in run.outcomes) and run.retried > 0


def test_an_event_whose_virtual_time_rounds_below_it_still_fires():
    # (at / 3) * 3 < at in binary floating point: the loop once spun forever on such events
    at = 25.276319267505105
    assert (at / 3.0) * 3.0 < at
    run, cluster = preempted_run(notice_s=0.5, at=at, time_scale=3.0)
    assert cluster.mass_preemptions == 1 and len(run.outcomes) == 300


def test_the_command_prints_one_json_line_and_a_plot(trace, tmp_path, capsys):
    plot = tmp_path / "run.png"
    argv = ["--trace", str(trace), "--policy", "tidegate", "--capacity-rps", "5", "--json"]
    assert main([*argv, "--plot", str(plot)]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert json.loads(line).keys() >= FIELDS
    assert plot.stat().st_size > 10_000


@pytest.mark.parametrize(
    "extra",
    [
        ["--pools", "[{name: x, capacity_type: cheap, price_per_hour: 1}]"],
        ["--profile", "nope"],
        ["--slo-objective", "1.5"],
        ["--on-demand-base", "-1"],
        ["--scale-down-window", "-5"],
        ["--slow-start", "-1"],
        ["--spare-window", "-1"],
    ],
)
def test_the_command_refuses_bad_settings(trace, capsys, extra):
    assert main(["--trace", str(trace), "--policy", "kpa", *extra]) == 2
    assert "tidegate replay:" in capsys.readouterr().err


def test_sliding_quantiles_and_rates():
    window = SortedWindow(10.0)
    for t in range(20):
        window.add(float(t), float(t))
    window.expire(19.0)  # keeps 9..19
    assert len(window) == 11 and window.quantile(0.95) == 19.0 and window.quantile(0.5) == 14.0
    signals = SignalWindow(10.0)
    for t in range(100):
        signals.arrival(t * 0.5)
    reading = signals.read(49.5, waiting=3, held=2, in_flight=10)
    assert reading.arrival_rps == pytest.approx(2.0, rel=0.06)
    assert reading.miss_share is None  # no targets given
    assert (reading.queued, reading.in_flight, reading.ttft_p95_s) == (5, 12, None)


def test_the_miss_share_counts_requests_over_either_target():
    signals = SignalWindow(10.0, targets=(1.0, 0.05))
    for t, ttft in enumerate([0.2, 0.5, 1.5, 0.9]):
        signals.ttft.add(float(t), ttft)
    for t, itl in enumerate([0.01, 0.06, 0.02, 0.03, 0.04]):
        signals.itl.add(float(t), itl)
    reading = signals.read(5.0, waiting=0, held=0, in_flight=0)
    assert reading.miss_share == pytest.approx(1 / 4 + 1 / 5)
    assert reading.requests == 4  # first tokens in the window: what the share is over
    assert SignalWindow(10.0, targets=(1.0, 0.05)).read(0.0, 0, 0, 0).miss_share is None


@pytest.mark.parametrize("learn", [True, False])
def test_tidegate_learns_capacity_unless_told_not_to(trace, learn):
    from autoscaler.replay.calibrate import Capacity
    from autoscaler.replay.policies import TidegatePolicy
    from autoscaler.replay.runner import build_policy

    settings = ReplaySettings(trace=trace, capacity_rps=5.0, learn_capacity=learn)
    pools = parse_pools(None)
    status = ClusterModel(pools, draw_market(pools, 100.0)).status(0.0)
    policy = build_policy("tidegate", status, Capacity(5.0, 20.0), 10.0, settings)
    assert isinstance(policy, TidegatePolicy) and policy.learning.enabled is learn
    assert policy.slo.objective == 0.99  # learning judges the miss share against 1%


def test_a_warm_up_replays_the_day_before_and_counts_only_the_day(trace, tmp_path):
    # The last hour of day 0 runs at twice the rate of day 1's first hour.
    rows = ["window_start_s,window_s,total_rate_rps,gap"]
    rows += [f"{82_800 + 600 * i},600,2.0,0" for i in range(6)]
    rows += [f"{86_400 + 600 * i},600,1.0,0" for i in range(6)]
    rates = tmp_path / "rates.csv"
    rates.write_text("\n".join(rows) + "\n")
    common = dict(trace=trace, rates=rates, day=1, hours=1.0, peak_rps=4.0, time_scale=60.0, seed=3)
    cold = ReplaySettings(**common, warmup_hours=0.0, capacity_rps=5.0, concurrency=20.0)
    warm = ReplaySettings(**common, warmup_hours=1.0, capacity_rps=5.0, concurrency=20.0)
    cold_load, warm_load = Workload(cold), Workload(warm)
    assert warm_load.warmup_s == 3600.0 and warm_load.horizon_s == 7200.0
    assert warm_load.peak_rps == 4.0 and warm_load.start_rps == pytest.approx(8.0)
    measured = [r for r in warm_load.requests if r.arrival_s * 60.0 >= 3600.0]
    # the day's rate (4/s over 60 virtual s), the warm-up's twice that
    assert len(measured) == pytest.approx(240, rel=0.2)
    assert len(warm_load.requests) - len(measured) == pytest.approx(480, rel=0.2)
    results = {}
    for name, settings, workload in (("cold", cold, cold_load), ("warm", warm, warm_load)):
        results[name] = replay_policy(
            "static", parse_pools("on-demand"), settings, workload, capacity(settings, workload)
        )
    result = results["warm"]
    assert result.requests == len(measured) and result.scenario_hours == 1.0
    assert result.warmup_hours == 1.0
    assert min(o.arrival_s for o in result.outcomes) >= 0.0
    assert max(o.arrival_s for o in result.outcomes) <= 60.0
    assert result.samples[0].at == pytest.approx(0.0, abs=1e-6)
    # the same static fleet, billed for the measured hour only
    assert result.cost == pytest.approx(results["cold"].cost, rel=0.01)
    assert json.loads(result.to_json())["warmup_hours"] == 1.0


def placement(name: str, settings: ReplaySettings) -> tuple[ScalingPolicy, dict[str, int]]:
    """The policy ``settings`` build on the default pools (5 req/s per replica), and where it
    would run 8 replicas."""
    pools = parse_pools(None)
    status = ClusterModel(pools, draw_market(pools, 100.0)).status(0.0)
    policy = build_policy(name, status, Capacity(5.0, 20.0), 10.0, settings)
    return policy, policy.initial(status, 8)


def test_tidegate_takes_its_spot_over_provision_from_the_settings(trace):
    settings = ReplaySettings(trace=trace, capacity_rps=5.0, spot_over_provision=0.25)
    policy, placed = placement("tidegate", settings)
    assert isinstance(policy, TidegatePolicy) and policy.spot.over_provision == 0.25
    # 8 replicas wanted, one on-demand floor: 7 on spot plus a quarter of them
    assert placed == {"spot": 9, "on-demand": 1}


def test_the_on_demand_base_and_scale_down_window_reach_the_policies(trace):
    settings = ReplaySettings(
        trace=trace,
        capacity_rps=5.0,
        on_demand_base=0,
        scale_down_window_s=1200.0,
        spare_window_s=300.0,
    )
    tidegate, placed = placement("tidegate", settings)
    assert isinstance(tidegate, TidegatePolicy)
    assert tidegate.behavior.scale_down_window_s == 1200.0
    assert tidegate.spot.spare_window_s == 300.0
    # no floor: all 8 on spot, plus the 30% over-provision (no demand seen yet)
    assert placed == {"spot": 11, "on-demand": 0}
    skyserve, placed = placement("skyserve", settings)
    assert isinstance(skyserve, SkyServePolicy)
    assert placed == {"spot": 8, "on-demand": 0}
    assert placement("skyserve", ReplaySettings(trace=trace))[1] == {"spot": 7, "on-demand": 1}


@pytest.mark.parametrize(("slow_start_s", "in_a_row"), [(0.0, range(80, 82)), (10.0, range(8, 9))])
def test_a_replica_joining_a_busy_fleet_gets_the_gateways_slow_start(slow_start_s, in_a_row):
    route = ElasticRoute(build_router(SchedulerSettings()), slow_start_s=slow_start_s)
    engines = {r: VirtualEngine(PROFILE, EngineConfig()) for r in ("old-1", "old-2", "new")}

    def send(request: ReplayRequest, now: float) -> str:
        replica = route.route(request, now)
        assert replica is not None
        engines[replica].submit(request, now)
        return replica

    route.add("old-1", engines["old-1"], now=0.0)
    route.add("old-2", engines["old-2"], now=0.0)
    for i in range(80):  # 40 queued on each
        send(ReplayRequest(f"busy{i}", 0.0, 500, 100), 0.0)
    route.add("new", engines["new"], now=30.0)
    burst = [send(ReplayRequest(f"burst{i}", 30.0, 500, 100), 30.0) for i in range(100)]
    # The old replicas weigh 80 each (40 waiting as probed, plus 40 in flight). Without slow
    # start the newcomer takes every request until it weighs as much; just joined, at a
    # tenth of the weight, it takes 8, as (8 + 1) / 0.1 - 1 passes 80.
    taken = next(i for i, replica in enumerate(burst) if replica != "new")
    assert taken in in_a_row
