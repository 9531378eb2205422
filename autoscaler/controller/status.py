"""The status a pass writes into its ModelScaler: pure formatting of what was decided.

Conditions follow the HorizontalPodAutoscaler's: ``AbleToScale`` (the targets could be read
and set), ``ScalingActive`` (signals are fresh enough to scale on) and ``ScalingLimited``
(bounds or rate limits held the number back). A condition's ``lastTransitionTime`` moves
only when its status changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from autoscaler.policy.observation import Observation, Slo, miss_share

if TYPE_CHECKING:
    from autoscaler.controller.reconcile import Reconciled, ScalerObject, TargetState

Json = dict[str, Any]
Outcome = Literal["scaled", "unchanged", "paused", "missing", "failed"]
LIMITING_STEPS = {"bounds", "rate-limit"}


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class PoolAction:
    """What a pass did to one pool's target."""

    pool: str
    outcome: Outcome
    detail: str


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


def merge_conditions(
    previous: Sequence[Mapping[str, Any]],
    wanted: Sequence[Condition],
    now: float,
    generation: int,
) -> list[Json]:
    before = {c.get("type"): c for c in previous}
    out = []
    for condition in wanted:
        status = "True" if condition.status else "False"
        old = before.get(condition.type) or {}
        moved = old.get("status") != status or not old.get("lastTransitionTime")
        out.append(
            {
                "type": condition.type,
                "status": status,
                "reason": condition.reason,
                "message": condition.message,
                "observedGeneration": generation,
                "lastTransitionTime": rfc3339(now) if moved else old["lastTransitionTime"],
            }
        )
    return out


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 4)


def observed(obs: Observation, slo: Slo | None = None) -> Json:
    """The signals; with an SLO that has an objective, the miss share it is judged by."""
    out: Json = {
        "time": rfc3339(obs.at),
        "fresh": obs.fresh,
        "readyReplicas": obs.ready_replicas,
        "arrivalRps": _number(obs.arrival_rps),
        "ttftP95Seconds": _number(obs.ttft_p95_s),
        "itlP95Seconds": _number(obs.itl_p95_s),
        "queued": _number(obs.queued),
    }
    if slo is not None and slo.objective is not None:
        out["missShare"] = _number(miss_share(obs, slo))
    return out


def signal_condition(obs: Observation) -> Condition:
    if not obs.fresh:
        return Condition(
            "ScalingActive", False, "SignalsStale", "signals are stale: holding, never scaling down"
        )
    if obs.arrival_rps is None:
        return Condition(
            "ScalingActive", False, "SignalsMissing", "no arrival rate: holding, never scaling down"
        )
    return Condition("ScalingActive", True, "SignalsFresh", "scaling on fresh signals")


def action_condition(paused: bool, actions: Sequence[PoolAction]) -> Condition:
    failed = [a for a in actions if a.outcome in {"failed", "missing"}]
    if failed:
        detail = "; ".join(f"{a.pool}: {a.detail}" for a in failed)
        reason = "FailedScale" if any(a.outcome == "failed" for a in failed) else "TargetNotFound"
        return Condition("AbleToScale", False, reason, detail)
    if paused:
        return Condition("AbleToScale", True, "Paused", "the ModelScaler is paused")
    scaled = [a for a in actions if a.outcome == "scaled"]
    if scaled:
        detail = "; ".join(f"{a.pool}: {a.detail}" for a in scaled)
        return Condition("AbleToScale", True, "SucceededRescale", detail)
    return Condition("AbleToScale", True, "ReadyForNewScale", "every target is as planned")


def limit_condition(reconciled: Reconciled) -> Condition:
    step = reconciled.decision.decided_by
    if step.name in LIMITING_STEPS:
        reason = "TooManyReplicasWanted" if step.name == "bounds" else "ScaleRateLimited"
        return Condition("ScalingLimited", True, reason, step.why)
    return Condition("ScalingLimited", False, "DesiredWithinRange", "not held back")


def capacity_status(reconciled: Reconciled) -> Json:
    """The learned capacity, for people and for the next leader to resume from."""
    c = reconciled.capacity
    out: Json = {
        "learnedRps": _number(c.rps),
        "priorRps": c.prior_rps,
        "samples": c.samples,
        "why": c.why,
    }
    if c.updated_at is not None:
        out["updatedAt"] = rfc3339(c.updated_at)
    return out


def build_status(
    scaler: ScalerObject,
    reconciled: Reconciled,
    obs: Observation,
    targets: Mapping[str, TargetState | None],
    actions: Sequence[PoolAction],
    now: float,
) -> Json:
    decision = reconciled.decision
    done = {a.pool: a for a in actions}
    pools = []
    for pool in scaler.spec.pools:
        target = targets.get(pool.name)
        since = reconciled.pending_since.get(pool.name)
        entry: Json = {
            "name": pool.name,
            "capacityType": pool.capacity_type,
            "currentReplicas": target.spec_replicas if target else 0,
            "desiredReplicas": reconciled.plan.replicas.get(pool.name, 0),
            "readyReplicas": target.ready_replicas if target else 0,
            "paused": scaler.paused or bool(target and target.paused),
        }
        if since is not None:
            entry["pendingSince"] = rfc3339(since)
        seen = next((p for p in reconciled.pools if p.name == pool.name), None)
        if seen is not None and seen.lost:
            entry["lostReplicas"] = seen.lost
        if seen is not None and seen.preemptions:
            entry["recentLosses"] = len(seen.preemptions)
        if pool.name in done:
            entry["action"] = done[pool.name].detail
        pools.append(entry)
    wanted = [
        action_condition(scaler.paused, actions),
        signal_condition(obs),
        limit_condition(reconciled),
    ]
    return {
        "observedGeneration": scaler.generation,
        "desiredReplicas": reconciled.plan.total,
        "readyReplicas": reconciled.ready_replicas,
        "pools": pools,
        "observed": observed(obs, scaler.spec.slo_targets()),
        "capacity": capacity_status(reconciled),
        "lastDecision": {
            "time": rfc3339(now),
            "replicas": decision.replicas,
            "decidedBy": decision.decided_by.name,
            "why": decision.decided_by.why,
            "capacityPerReplicaRps": _number(reconciled.capacity.rps),
            "steps": [
                {"name": s.name, "replicas": s.replicas, "why": s.why} for s in decision.steps
            ],
            "capacity": list(reconciled.plan.reasons),
        },
        "conditions": merge_conditions(
            scaler.status.get("conditions") or [], wanted, now, scaler.generation
        ),
    }


def invalid_status(previous: Mapping[str, Any], generation: int, message: str, now: float) -> Json:
    """A spec the controller cannot read: say so and touch nothing."""
    wanted = [Condition("AbleToScale", False, "InvalidSpec", message)]
    kept = [c for c in previous.get("conditions") or [] if c.get("type") != "AbleToScale"]
    return {
        "observedGeneration": generation,
        "conditions": [
            *kept,
            *merge_conditions(previous.get("conditions") or [], wanted, now, generation),
        ],
    }
