"""Each scaling policy's decisions on a fake clock: views in, replicas per pool out."""

from __future__ import annotations

import pytest

from autoscaler.policy.learn import LearnSettings
from autoscaler.policy.observation import Slo
from autoscaler.policy.pipeline import Behavior
from autoscaler.replay.cluster import PoolStatus
from autoscaler.replay.peer_policies import KpaPolicy, QueueDepthPolicy, SkyServePolicy
from autoscaler.replay.policies import ClusterView, StaticPolicy, TidegatePolicy, single_pool
from autoscaler.replay.signals import Signals

SLO = Slo(ttft_p95_s=1.0, itl_p95_s=0.05)


def status(
    name: str = "od",
    kind: str = "on-demand",
    *,
    desired: int = 0,
    ready: int = 0,
    pending_since: float | None = None,
    price: float = 6.88,
) -> PoolStatus:
    return PoolStatus(
        name=name,
        capacity_type=kind,  # type: ignore[arg-type]
        price_per_hour=price,
        min_replicas=0,
        max_replicas=32,
        desired=desired,
        ready=ready,
        starting=0,
        pending=int(pending_since is not None),
        pending_since=pending_since,
        leaving=0,
    )


def view(
    at: float,
    *pools: PoolStatus,
    rps: float | None = None,
    waiting: float = 0.0,
    in_flight: float = 0.0,
    ttft: float | None = None,
) -> ClusterView:
    signals = Signals(rps, ttft, None, waiting, waiting, in_flight)
    return ClusterView(at, pools or (status(),), signals)


# -- static and the pool single-pool policies use ---------------------------------------


def test_static_never_moves():
    policy = StaticPolicy("od", 12)
    assert policy.initial([status()], 3) == {"od": 12}
    assert policy.decide(view(0.0, rps=1000.0)) == {"od": 12}


def test_single_pool_policies_use_the_first_on_demand_pool():
    assert single_pool([status("s", "spot"), status("od")]) == "od"
    assert single_pool([status("s", "spot")]) == "s"


# -- queue depth (KEDA on vllm:num_requests_waiting, HPA behaviour) ----------------------


@pytest.mark.parametrize(
    ("current", "waiting", "expected"),
    [
        (4, 0.0, 1),  # no queue: down to the minimum (after stabilisation, see below)
        (4, 20.0, 4),  # 20 / 5 = 4: as is
        (4, 21.0, 4),  # within the 10% tolerance
        (4, 30.0, 6),
        (2, 100.0, 6),  # wants 20; HPA adds at most max(4 pods, 100%) per period
        (10, 400.0, 20),  # +100% of 10
    ],
)
def test_queue_depth_targets_five_waiting_per_replica(current, waiting, expected):
    policy = QueueDepthPolicy("od")
    assert policy.decide(view(0.0, status(desired=current), waiting=waiting)) == {"od": expected}


def test_queue_depth_scales_down_on_the_highest_recommendation_of_five_minutes():
    policy = QueueDepthPolicy("od")
    assert policy.decide(view(0.0, status(desired=4), waiting=40.0)) == {"od": 8}
    seen = [policy.decide(view(t, status(desired=8), waiting=0.0))["od"] for t in (15, 150, 300)]
    assert seen == [8, 8, 8]
    assert policy.decide(view(315.0, status(desired=8), waiting=0.0)) == {"od": 1}


# -- KPA (AIBrix / Knative) -------------------------------------------------------------


def kpa() -> KpaPolicy:
    return KpaPolicy("od", target_concurrency=10.0)


def test_kpa_stable_mode_sizes_on_the_60s_average_concurrency():
    policy = kpa()
    for t in range(0, 60, 2):
        out = policy.decide(view(float(t), status(ready=4), in_flight=45.0))
    assert out == {"od": 5}
    assert policy._panic_since is None


def test_kpa_panics_at_twice_the_ready_pods_and_does_not_scale_down_while_panicking():
    policy = kpa()
    for t in range(0, 60, 2):
        policy.decide(view(float(t), status(ready=2), in_flight=15.0))
    # a burst: the 6 s panic window sees 4x what 2 pods can take; up at most 2x per step
    out = policy.decide(view(60.0, status(ready=2), in_flight=80.0))
    assert out == {"od": 4} and policy._panic_since == 60.0
    out = policy.decide(view(62.0, status(ready=4), in_flight=80.0))
    assert out == {"od": 6}  # the 6 s window: (15 + 80 + 80) / 3 over a target of 10
    # the burst ends: panic holds the count for a stable window after the last trigger
    low = [policy.decide(view(t, status(ready=6), in_flight=10.0))["od"] for t in (64.0, 120.0)]
    assert low == [6, 6] and policy._panic_since == 60.0


def test_kpa_scale_down_waits_for_the_delay_window():
    policy = KpaPolicy("od", target_concurrency=10.0, scale_down_delay_s=600.0)
    policy.decide(view(0.0, status(ready=6), in_flight=60.0))
    assert policy.decide(view(300.0, status(ready=6), in_flight=10.0)) == {"od": 6}
    assert policy.decide(view(601.0, status(ready=6), in_flight=10.0)) == {"od": 3}  # /2 per step


# -- SkyServe (QPS with spot first and on-demand fallback) -----------------------------


def skyserve() -> SkyServePolicy:
    return SkyServePolicy("spot", "od", target_qps_per_replica=10.0)


def pools(spot_ready: int) -> tuple[PoolStatus, PoolStatus]:
    return status("spot", "spot", ready=spot_ready, price=2.41), status("od")


def test_skyserve_places_spot_first_with_a_base_on_demand_replica():
    policy = skyserve()
    assert policy.initial(pools(0), 5) == {"spot": 4, "od": 1}


def test_skyserve_scales_up_only_after_five_minutes_of_higher_qps():
    policy = skyserve()
    policy.initial(pools(4), 5)
    outs = [policy.decide(view(20.0 * i, *pools(4), rps=80.0)) for i in range(1, 16)]
    assert all(o == {"spot": 4, "od": 1} for o in outs[:14])
    assert outs[14] == {"spot": 7, "od": 1 + 3}  # 8 wanted; 3 spot not ready: on-demand covers


def test_skyserve_scales_down_only_after_twenty_minutes():
    policy = skyserve()
    policy.initial(pools(7), 8)
    outs = [policy.decide(view(20.0 * i, *pools(7), rps=20.0))["spot"] for i in range(1, 61)]
    assert outs[:59] == [7] * 59 and outs[59] == 1


def test_skyserve_dynamic_fallback_covers_preempted_or_missing_spot_with_on_demand():
    policy = skyserve()
    policy.initial(pools(4), 5)
    assert policy.decide(view(20.0, *pools(1), rps=50.0)) == {"spot": 4, "od": 1 + 3}
    assert policy.decide(view(40.0, *pools(4), rps=50.0)) == {"spot": 4, "od": 1}


# -- Tidegate: decide() then plan_capacity() -------------------------------------------


def tidegate_pools(
    spot_desired: int = 0, spot_ready: int = 0, od_desired: int = 0, od_ready: int = 0, **kw
):
    spot = status("spot", "spot", desired=spot_desired, ready=spot_ready, price=2.41, **kw)
    return spot, status("od", desired=od_desired, ready=od_ready)


def test_tidegate_starts_on_the_on_demand_floor_plus_spot_with_over_provisioning():
    policy = TidegatePolicy(capacity_rps=10.0, slo=SLO)
    assert policy.initial(tidegate_pools(), 10) == {"spot": 12, "od": 1}  # 9 + ceil(2.7)


def test_tidegate_follows_demand_and_latency():
    fixed = LearnSettings(enabled=False)
    policy = TidegatePolicy(capacity_rps=10.0, slo=SLO, behavior=Behavior(), learning=fixed)
    policy.initial(tidegate_pools(), 4)
    fleet = tidegate_pools(spot_desired=4, spot_ready=4, od_desired=1, od_ready=1)
    assert policy.decide(view(15.0, *fleet, rps=80.0)) == {"spot": 10, "od": 1}  # 7 + ceil(2.1)
    assert policy.last is not None and policy.last.decided_by.name == "demand"
    fleet = tidegate_pools(spot_desired=8, spot_ready=8, od_desired=1, od_ready=1)
    out = policy.decide(view(90.0, *fleet, rps=80.0, ttft=1.5))  # 9 ready x 1.5 = 14
    assert policy.last is not None and policy.last.decided_by.name == "latency"
    assert out == {"spot": 13 + 4, "od": 1}  # 13 + ceil(3.9)


def test_tidegate_waits_out_a_one_interval_spike_and_learns_capacity():
    policy = TidegatePolicy(capacity_rps=10.0, slo=SLO)  # the replay's defaults
    policy.initial(tidegate_pools(), 4)
    fleet = tidegate_pools(spot_desired=4, spot_ready=4, od_desired=1, od_ready=1)
    assert policy.decide(view(15.0, *fleet, rps=80.0, ttft=0.5)) == {"spot": 4, "od": 1}
    assert policy.last is not None and policy.last.decided_by.name == "stabilize"
    assert policy.capacity is not None and policy.capacity.rps > 10.0  # 16/replica within SLO
    out = policy.decide(view(150.0, *fleet, rps=80.0, ttft=1.5))  # still wanted 2 min on
    assert sum(out.values()) > 5


def test_tidegate_pads_demand_that_has_held_for_the_spare_window():
    fixed = LearnSettings(enabled=False)
    policy = TidegatePolicy(capacity_rps=10.0, slo=SLO, behavior=Behavior(), learning=fixed)
    policy.initial(tidegate_pools(), 5)
    fleet = tidegate_pools(spot_desired=5, spot_ready=5, od_desired=1, od_ready=1)
    # 42 req/s is 4.2 replicas' worth, 3.2 of it on spot: 4 planned there.
    first = policy.decide(view(0.0, *fleet, rps=42.0))
    assert first == {"spot": 6, "od": 1}  # the window not yet seen: 4 + ceil(1.2)
    for at in range(15, 135, 15):
        out = policy.decide(view(float(at), *fleet, rps=42.0))
    assert out == {"spot": 5, "od": 1}  # ceil(3.2 x 1.3) = 5: one spare, not two
    # One dip lets the spare go, and it comes back once demand has held 2 minutes again.
    assert policy.decide(view(135.0, *fleet, rps=30.0)) == {"spot": 4, "od": 1}
    assert policy.decide(view(150.0, *fleet, rps=42.0)) == {"spot": 4, "od": 1}
    for at in range(165, 285, 15):
        out = policy.decide(view(float(at), *fleet, rps=42.0))
    assert out == {"spot": 5, "od": 1}


def test_tidegate_falls_back_to_on_demand_when_spot_stays_pending():
    policy = TidegatePolicy(capacity_rps=10.0, slo=SLO)
    policy.initial(tidegate_pools(), 4)
    fleet = tidegate_pools(
        spot_desired=6, spot_ready=2, od_desired=1, od_ready=1, pending_since=0.0
    )
    assert policy.decide(view(200.0, *fleet, rps=50.0)) == {"spot": 6, "od": 1}  # < 300 s
    out = policy.decide(view(400.0, *fleet, rps=50.0))
    assert out == {"spot": 2, "od": 3}  # spot held at its ready 2, the rest on demand


# -- warm start: each policy starts as if it had been running ----------------------------


def test_warm_started_policies_do_not_collapse_before_their_windows_fill():
    queue = QueueDepthPolicy("od")
    queue.initial([status()], 10)
    assert queue.decide(view(0.0, status(desired=10))) == {"od": 10}  # 5-min window
    kpa_ = kpa()
    kpa_.initial([status()], 10)
    assert kpa_.decide(view(0.0, status(ready=10))) == {"od": 10}  # Knative starts panicking
    tidegate = TidegatePolicy(capacity_rps=10.0, slo=SLO)
    tidegate.initial(tidegate_pools(), 10)
    fleet = tidegate_pools(spot_desired=12, spot_ready=12, od_desired=1, od_ready=1)
    assert tidegate.decide(view(15.0, *fleet, rps=20.0)) == {"spot": 12, "od": 1}
