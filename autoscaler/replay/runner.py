"""One what-if from its settings: arrivals, the replica's capacity at the SLO, the policy by
name, the cluster and the loop; the composition root of ``tidegate replay`` and
``bench/autoscale.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from autoscaler.policy.capacity import SpotSettings
from autoscaler.policy.learn import LearnSettings
from autoscaler.policy.observation import Slo
from autoscaler.replay.calibrate import Capacity, attainment_at, capacity_at_slo
from autoscaler.replay.cluster import ClusterModel, PoolStatus
from autoscaler.replay.elastic import ElasticRoute
from autoscaler.replay.market import draw_market
from autoscaler.replay.peer_policies import KpaPolicy, QueueDepthPolicy, SkyServePolicy
from autoscaler.replay.policies import (
    REPLAY_BEHAVIOR,
    ScalingPolicy,
    StaticPolicy,
    TidegatePolicy,
    single_pool,
)
from autoscaler.replay.pools import PoolSpec
from autoscaler.replay.report import ReplayResult, summarize
from autoscaler.replay.scenario import (
    curve_arrivals,
    peak_rate,
    read_lengths,
    read_rate_curve,
)
from autoscaler.replay.whatif import run_whatif
from scheduler.config import SchedulerSettings, build_router
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import builtin_registry
from workers.sim.replay import VirtualEngine
from workers.sim.trace import read_trace

PolicyName = Literal["static", "queue-depth", "kpa", "skyserve", "tidegate"]
POLICIES: tuple[PolicyName, ...] = ("static", "queue-depth", "kpa", "skyserve", "tidegate")
KNATIVE_TARGET_UTILIZATION = 0.7
"""Knative's ``container-concurrency-target-percentage`` default (config-autoscaler): the KPA
aims at 70% of what a replica can hold; here, of its in-flight count at the SLO capacity."""


class ReplaySettings(BaseModel):
    """A what-if's inputs. With ``rates``, arrivals follow that day of the rate curve
    (scaled so the day peaks at ``peak_rps``, compressed ``time_scale`` times) with lengths
    from ``trace``, after ``warmup_hours`` of the day before; without, the trace's own
    arrivals replay (``speedup`` faster)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace: Path
    rates: Path | None = None
    day: int = Field(default=10, ge=0)
    hours: float = Field(default=24.0, gt=0)
    warmup_hours: float = Field(
        default=2.0,
        ge=0,
        description="with rates: hours before the day replayed so every policy starts the "
        "day in its own steady state, not in the same cold fleet; left out of the results",
    )
    peak_rps: float = Field(default=160.0, gt=0)
    time_scale: float = Field(default=24.0, gt=0, description="scenario s per virtual s")
    speedup: float = Field(default=1.0, gt=0)
    limit: int | None = Field(default=None, ge=1)
    profile: str = "llama3-8b-h100"
    ttft_slo_s: float = Field(default=1.0, gt=0)
    itl_slo_s: float = Field(default=0.05, gt=0)
    slo_objective: float = Field(
        default=0.99, gt=0, lt=1, description="share of requests within both targets"
    )
    capacity_rps: float | None = Field(default=None, gt=0)
    concurrency: float | None = Field(default=None, gt=0)
    learn_capacity: bool = Field(
        default=True, description="Tidegate: learn capacity per replica (else keep the prior)"
    )
    spot_over_provision: float = Field(
        default=SpotSettings().over_provision,
        ge=0,
        le=1,
        description="Tidegate: spot replicas are planned for demand x (1 + this), at least "
        "(the planner raises it to the observed preemption rate)",
    )
    spare_window_s: float = Field(
        default=SpotSettings().spare_window_s,
        ge=0,
        le=3600,
        description="Tidegate: spot demand, for the padding, is the lowest arrival rate of "
        "this window (scenario seconds)",
    )
    forecast_lead_s: float = Field(
        default=0.0,
        ge=0,
        description="Tidegate: size for the arrival rate this far ahead (scenario seconds), "
        "projected from its rising trend; 0 sizes for the rate now",
    )
    spot_fallback_after_s: float = Field(
        default=300.0, ge=0, description="Tidegate: spot pending this long -> on-demand"
    )
    scale_down_window_s: float = Field(
        default=REPLAY_BEHAVIOR.scale_down_window_s,
        ge=0,
        description="Tidegate: scale down to the highest recommendation of this window",
    )
    on_demand_base: int = Field(
        default=1,
        ge=0,
        description="replicas the spot-aware policies keep on on-demand: Tidegate's "
        "on-demand floor, SkyServe's base_ondemand_fallback_replicas",
    )
    slow_start_s: float = Field(
        default=SchedulerSettings.model_fields["slow_start_s"].default,
        ge=0,
        description="the gateway's slow start for a replica that joins (virtual seconds, "
        "as requests run; 0: off), for every policy",
    )
    seed: int = 0
    signal_window_s: float = Field(default=60.0, gt=0)
    sample_s: float = Field(default=300.0, gt=0)

    @property
    def slo(self) -> Slo:
        return Slo(
            ttft_p95_s=self.ttft_slo_s, itl_p95_s=self.itl_slo_s, objective=self.slo_objective
        )

    @property
    def scale(self) -> float:
        """Scenario seconds per virtual second."""
        return self.time_scale if self.rates is not None else 1.0


class Workload:
    """Arrivals on the virtual clock and what they imply: horizon, peak, starting rate."""

    def __init__(self, settings: ReplaySettings) -> None:
        self.lengths = read_lengths(settings.trace)
        k = settings.scale
        self.warmup_s = 0.0
        """Scenario seconds replayed before the measured window."""
        if settings.rates is not None:
            self.warmup_s = settings.warmup_hours * 3600.0
            curve = read_rate_curve(
                settings.rates, settings.day, settings.hours, lead_hours=settings.warmup_hours
            )
            # Scaled so that the day itself, not its warm-up, peaks at peak_rps.
            curve = curve.scaled(settings.peak_rps / curve.peak_from(self.warmup_s))
            self.horizon_s = self.warmup_s + settings.hours * 3600.0
            self.requests = curve_arrivals(
                curve, self.lengths, duration_s=self.horizon_s, time_scale=k, seed=settings.seed
            )
            self.peak_rps = settings.peak_rps
            self.start_rps = curve.at(0.0)
        else:
            self.requests = read_trace(
                settings.trace, limit=settings.limit, speedup=settings.speedup
            )
            last = self.requests[-1].arrival_s if self.requests else 0.0
            self.horizon_s = last
            self.peak_rps = peak_rate(self.requests, 600.0)
            head = [r for r in self.requests if r.arrival_s < 60.0]
            self.start_rps = len(head) / 60.0
        if settings.limit is not None:
            self.requests = self.requests[: settings.limit]
            if self.requests:
                self.horizon_s = min(self.horizon_s, self.requests[-1].arrival_s * k)


def capacity(settings: ReplaySettings, workload: Workload) -> Capacity:
    profile = builtin_registry().get(settings.profile)
    if settings.capacity_rps is not None:
        concurrency = settings.concurrency
        if concurrency is None:
            _, concurrency = attainment_at(
                settings.capacity_rps, profile, EngineConfig(), workload.lengths, settings.slo
            )
        return Capacity(settings.capacity_rps, concurrency)
    return capacity_at_slo(profile, EngineConfig(), workload.lengths, settings.slo, high=40.0)


def build_policy(
    name: PolicyName,
    pools: Sequence[PoolStatus],
    cap: Capacity,
    peak_rps: float,
    settings: ReplaySettings,
) -> ScalingPolicy:
    single = single_pool(pools)
    ceiling = next(p.max_replicas for p in pools if p.name == single)
    if name == "static":
        return StaticPolicy(single, max(1, math.ceil(peak_rps / cap.rps - 1e-9)))
    if name == "queue-depth":
        return QueueDepthPolicy(single, max_replicas=ceiling)
    if name == "kpa":
        target = KNATIVE_TARGET_UTILIZATION * cap.concurrency
        return KpaPolicy(single, target_concurrency=target, max_replicas=ceiling)
    if name == "skyserve":
        spot_pool = next((p.name for p in pools if p.capacity_type == "spot"), None)
        return SkyServePolicy(
            spot_pool,
            single,
            cap.rps,
            max_replicas=ceiling,
            base_ondemand_fallback_replicas=settings.on_demand_base,
        )
    spot = SpotSettings(
        on_demand_floor=settings.on_demand_base,
        fallback_after_s=settings.spot_fallback_after_s,
        over_provision=settings.spot_over_provision,
        spare_window_s=settings.spare_window_s,
    )
    learning = LearnSettings(enabled=settings.learn_capacity)
    behavior = replace(
        REPLAY_BEHAVIOR,
        forecast_lead_s=settings.forecast_lead_s,
        scale_down_window_s=settings.scale_down_window_s,
    )
    return TidegatePolicy(cap.rps, settings.slo, behavior, learning=learning, spot=spot)


def replay_policy(
    name: PolicyName,
    pools: Sequence[PoolSpec],
    settings: ReplaySettings,
    workload: Workload,
    cap: Capacity,
) -> ReplayResult:
    k = settings.scale
    # The market is drawn for the measured window, so a warm-up leaves it unchanged.
    warmup = workload.warmup_s
    market = draw_market(pools, workload.horizon_s - warmup, settings.seed).shifted(warmup)
    cluster = ClusterModel(pools, market, seed=settings.seed, count_from=warmup)
    policy = build_policy(name, cluster.status(0.0), cap, workload.peak_rps, settings)
    profile = builtin_registry().get(settings.profile)
    route = ElasticRoute(
        build_router(SchedulerSettings()), seed=settings.seed, slow_start_s=settings.slow_start_s
    )
    started = time.process_time()
    run = run_whatif(
        workload.requests,
        policy,
        cluster,
        route,
        lambda: VirtualEngine(profile, EngineConfig()),
        initial_replicas=max(1, math.ceil(workload.start_rps / cap.rps - 1e-9)),
        time_scale=k,
        horizon_s=workload.horizon_s,
        signal_window_s=settings.signal_window_s,
        sample_s=settings.sample_s,
        slo_targets=(settings.ttft_slo_s, settings.itl_slo_s),
        measure_from_s=warmup,
    )
    return summarize(
        name,
        run,
        cluster,
        settings.slo,
        horizon_s=workload.horizon_s,
        time_scale=k,
        capacity_rps=cap.rps,
        cpu_s=time.process_time() - started,
        warmup_s=warmup,
    )
