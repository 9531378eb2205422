"""Scaling policies as the replay drives them: every ``interval_s`` of the scenario's clock a
policy gets a :class:`ClusterView` (pools, signals, the time) and returns the replicas it
wants per pool. Policies keep their own state (windows, histories) between calls, but read
time only from the view, so a test drives them on a fake clock.

Here: the interface, static provisioning and Tidegate's own policy, which is the real
decision code (:func:`~autoscaler.policy.pipeline.decide` then
:func:`~autoscaler.policy.capacity.plan_capacity`). Peers are in ``peer_policies``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from autoscaler.policy.capacity import PoolState, SpotSettings, plan_capacity, sustained_demand
from autoscaler.policy.learn import CapacityEstimate, LearnSettings, learned_capacity
from autoscaler.policy.observation import Observation, Slo
from autoscaler.policy.pipeline import Behavior, Decision, History, decide
from autoscaler.replay.cluster import PoolStatus
from autoscaler.replay.signals import Signals


@dataclass(frozen=True, slots=True)
class ClusterView:
    at: float
    """Seconds of the scenario's clock."""
    pools: tuple[PoolStatus, ...]
    signals: Signals

    def pool(self, name: str) -> PoolStatus:
        return next(p for p in self.pools if p.name == name)


class ScalingPolicy(Protocol):
    name: str
    interval_s: float

    def initial(self, pools: Sequence[PoolStatus], replicas: int) -> dict[str, int]:
        """Where this policy would run ``replicas`` replicas in steady state (the fleet
        the replay starts with, ready at once)."""
        ...

    def decide(self, view: ClusterView) -> dict[str, int]:
        """Desired replicas per pool (pools left out keep theirs)."""
        ...


def single_pool(pools: Sequence[PoolStatus]) -> str:
    """The pool a policy that knows nothing of spot scales: the first on-demand one."""
    return next((p.name for p in pools if p.capacity_type == "on-demand"), pools[0].name)


@dataclass
class StaticPolicy:
    """A fixed fleet, sized for the peak, on one pool."""

    pool: str
    replicas: int
    name: str = "static"
    interval_s: float = 3600.0

    def initial(self, pools: Sequence[PoolStatus], replicas: int) -> dict[str, int]:
        return {self.pool: self.replicas}

    def decide(self, view: ClusterView) -> dict[str, int]:
        return {self.pool: self.replicas}


REPLAY_BEHAVIOR = Behavior(scale_up_window_s=120.0)
"""Scale up on the lowest recommendation of two minutes: a one-interval spike in a 60 s
arrival rate would otherwise buy a replica for six minutes of provisioning plus the
scale-down window (replayed, learning off: 11% dearer at the same attainment)."""


@dataclass
class TidegatePolicy:
    """Tidegate's controller logic: the decision pipeline sizes the fleet from the arrival
    rate, latency against the SLO and the queue; the capacity planner splits it between
    spot and on-demand pools."""

    capacity_rps: float
    """The prior; the policy learns the real capacity per replica from what it observes."""
    slo: Slo
    behavior: Behavior = REPLAY_BEHAVIOR
    learning: LearnSettings = field(default_factory=LearnSettings)
    """The controller's defaults; the replay's signals also carry the miss share, so
    learning judges intervals by the error budget (docs/replay.md)."""
    capacity: CapacityEstimate | None = None
    spot: SpotSettings = field(default_factory=lambda: SpotSettings(fallback_after_s=300.0))
    interval_s: float = 15.0
    name: str = "tidegate"
    last: Decision | None = None
    _history: History = field(default_factory=History)

    def initial(self, pools: Sequence[PoolStatus], replicas: int) -> dict[str, int]:
        self._history = History(recommendations=((0.0, replicas),), last_replicas=replicas)
        return plan_capacity(replicas, [_state(p) for p in pools], self.spot, 0.0).replicas

    def decide(self, view: ClusterView) -> dict[str, int]:
        s = view.signals
        obs = Observation(
            at=view.at,
            ready_replicas=sum(p.ready for p in view.pools),
            arrival_rps=s.arrival_rps,
            ttft_p95_s=s.ttft_p95_s,
            itl_p95_s=s.itl_p95_s,
            queued=s.queued,
            miss_share=s.miss_share,
            window_requests=s.requests or None,
        )
        self.capacity = learned_capacity(
            self.capacity, self.capacity_rps, obs, self.slo, self.learning
        )
        self.last = decide(
            obs,
            self.slo,
            self.capacity.rps,
            self.behavior,
            self._history,
            capacity_source=self.capacity.describe(),
        )
        self._history = self._history.record(self.last, view.at, arrival_rps=s.arrival_rps)
        demand = sustained_demand(
            self._history.arrivals, view.at, self.spot.spare_window_s, self.capacity.rps
        )
        states = [_state(p) for p in view.pools]
        return plan_capacity(self.last.replicas, states, self.spot, view.at, demand).replicas


def _state(pool: PoolStatus) -> PoolState:
    return PoolState(
        name=pool.name,
        capacity_type=pool.capacity_type,
        price_per_hour=pool.price_per_hour,
        min_replicas=pool.min_replicas,
        max_replicas=pool.max_replicas,
        desired=pool.desired,
        ready=pool.ready,
        pending_since=pool.pending_since,
        preemptions=pool.preempted_at,
    )
