"""One reconcile of one ModelScaler, as a pure function.

Given the spec, what each pool's scale target holds now, the model's signals, what the
controller remembers from earlier passes and the time, say how many replicas each pool
should run, what to remember next and how to explain it. Reading the targets, reading
signals and patching live in adapters (:mod:`autoscaler.controller.kube`,
:mod:`autoscaler.signals`); the order of a pass is in :mod:`autoscaler.controller.loop`.

A restarted controller (or a new leader) has no memory: it seeds it from the status the
previous one wrote, so the last decision stays the "current" count, the scale-down window
starts again rather than being empty, and pending spot replicas keep their age.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoscaler.controller.disruption import Disruptions
from autoscaler.controller.spec import ModelScalerSpec
from autoscaler.controller.status import parse_time
from autoscaler.policy.capacity import CapacityPlan, PoolState, plan_capacity, sustained_demand
from autoscaler.policy.learn import CapacityEstimate, learn
from autoscaler.policy.observation import Observation
from autoscaler.policy.pipeline import Decision, History, decide


@dataclass(frozen=True, slots=True)
class TargetState:
    """A pool's scale target as read: its /scale, its readiness and its annotations."""

    spec_replicas: int
    status_replicas: int
    ready_replicas: int
    resource_version: str = ""
    paused: bool = False


@dataclass(frozen=True, slots=True)
class ScalerObject:
    """The parts of a ModelScaler object the reconciler reads."""

    namespace: str
    name: str
    spec: ModelScalerSpec
    generation: int = 0
    paused: bool = False
    status: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Memory:
    """What the controller keeps per ModelScaler between passes."""

    history: History = field(default_factory=History)
    pending_since: tuple[tuple[str, float], ...] = ()
    """(pool, since when its asked-for replicas have not all been ready)."""
    capacity: CapacityEstimate | None = None
    """Capacity per replica learned so far (None: seed it from the spec)."""

    def pending(self, pool: str) -> float | None:
        return dict(self.pending_since).get(pool)


@dataclass(frozen=True, slots=True)
class Reconciled:
    decision: Decision
    plan: CapacityPlan
    desired: dict[str, int]
    """Replicas to set, for the pools the controller may touch (not paused, target found)."""
    memory: Memory
    capacity: CapacityEstimate
    ready_replicas: int
    pending_since: dict[str, float | None]
    pools: tuple[PoolState, ...] = ()
    """The pools as the planner saw them (losses included)."""

    @property
    def decided_by(self) -> str:
        return self.decision.decided_by.name

    def log_line(self, scaler: ScalerObject) -> str:
        step = self.decision.decided_by
        pools = " ".join(f"{name}={n}" for name, n in self.plan.replicas.items())
        return (
            f"{scaler.key} model={scaler.spec.model} replicas "
            f"{self.decision.steps[0].replicas} -> {self.decision.replicas} "
            f"set by {step.name} ({step.why}); pools {pools or '-'}"
        )


def seed_memory(
    status: Mapping[str, Any], now: float, spec: ModelScalerSpec | None = None
) -> Memory:
    """Memory rebuilt from the status an earlier controller wrote (empty if none). The
    learned capacity resumes only while the spec's prior is the one it was learned from:
    a changed prior is someone saying the old evidence no longer holds."""
    last = (status.get("lastDecision") or {}).get("replicas")
    history = History()
    if isinstance(last, int):
        history = History(recommendations=((now, last),), last_replicas=last)
    pending = []
    for pool in status.get("pools") or []:
        since = parse_time(pool.get("pendingSince"))
        if since is not None and isinstance(pool.get("name"), str):
            pending.append((pool["name"], since))
    capacity = None
    if spec is not None:
        capacity = resume_capacity(status.get("capacity") or {}, spec)
    return Memory(history, tuple(pending), capacity)


def resume_capacity(saved: Mapping[str, Any], spec: ModelScalerSpec) -> CapacityEstimate:
    seeded = CapacityEstimate.seeded(spec.capacity_per_replica_rps)
    learned, prior = saved.get("learnedRps"), saved.get("priorRps")
    if not isinstance(learned, int | float) or learned <= 0 or prior != seeded.prior_rps:
        return seeded
    samples = saved.get("samples")
    return seeded.resumed(
        float(learned), samples if isinstance(samples, int) else 0, spec.learn_settings()
    )


def ready_total(targets: Mapping[str, TargetState | None]) -> int:
    return sum(t.ready_replicas for t in targets.values() if t is not None)


def reconcile(
    scaler: ScalerObject,
    targets: Mapping[str, TargetState | None],
    obs: Observation,
    memory: Memory | None,
    now: float,
    disruptions: Disruptions | None = None,
) -> Reconciled:
    """``targets`` maps each pool to its target's state, or None where it was not found;
    ``disruptions`` is what pod and node events said the pools lost (None: not watched)."""
    disruptions = disruptions or Disruptions()
    spec = scaler.spec
    memory = memory if memory is not None else seed_memory(scaler.status, now, spec)
    prior = memory.capacity
    if prior is None or prior.prior_rps != spec.capacity_per_replica_rps:
        prior = resume_capacity(scaler.status.get("capacity") or {}, spec)
    capacity = learn(prior, obs, spec.slo_targets(), spec.learn_settings())
    decision = decide(
        obs,
        spec.slo_targets(),
        capacity.rps,
        spec.policy_behavior(),
        memory.history,
        capacity_source=capacity.describe(),
    )
    states = []
    for pool in spec.pools:
        target = targets.get(pool.name)
        if target is None:
            continue  # nothing to scale; reported in the status
        pending = target.spec_replicas > target.ready_replicas
        since = memory.pending(pool.name)
        states.append(
            PoolState(
                name=pool.name,
                capacity_type=pool.capacity_type,
                price_per_hour=pool.price_per_hour,
                min_replicas=pool.min_replicas,
                max_replicas=pool.max_replicas,
                desired=target.spec_replicas,
                ready=target.ready_replicas,
                pending_since=(now if since is None else since) if pending else None,
                paused=scaler.paused or target.paused,
                lost=disruptions.lost_now(scaler.namespace, pool.scale_target_ref.name),
                preemptions=disruptions.loss_times(scaler.namespace, pool.scale_target_ref.name),
            )
        )
    history = memory.history.record(decision, now, arrival_rps=obs.arrival_rps)
    spot = spec.spot_settings()
    demand = sustained_demand(history.arrivals, now, spot.spare_window_s, capacity.rps)
    plan = plan_capacity(decision.replicas, states, spot, now, demand)
    pending_since: dict[str, float | None] = {}
    for state in states:
        asked = plan.replicas[state.name]
        since = now if state.pending_since is None else state.pending_since
        pending_since[state.name] = since if asked > state.ready else None
    desired = {s.name: plan.replicas[s.name] for s in states if not s.paused}
    remembered = tuple((name, t) for name, t in pending_since.items() if t is not None)
    return Reconciled(
        decision=decision,
        plan=plan,
        desired=desired,
        memory=Memory(history, remembered, capacity),
        capacity=capacity,
        ready_replicas=ready_total(targets),
        pending_since=pending_since,
        pools=tuple(states),
    )
