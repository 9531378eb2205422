"""A ModelScaler's spec as typed, validated values, and how it maps onto the policy's inputs.

The API server already validates against the CRD's schema and fills its defaults; parsing
again here gives the reconciler typed values and catches a CRD and code that drifted apart
(``extra="forbid"``: a field the code does not know is an error, not a silent default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from autoscaler.policy.capacity import SpotSettings
from autoscaler.policy.learn import LearnSettings
from autoscaler.policy.observation import Slo
from autoscaler.policy.pipeline import Behavior

GROUP = "tidegate.dev"
VERSION = "v1alpha1"
PLURAL = "modelscalers"
KIND = "ModelScaler"
PAUSED_ANNOTATION = "tidegate.dev/paused"

# Plurals of the kinds a pool usually scales; any other kind needs scaleTargetRef.resource.
_KNOWN_PLURALS = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "ReplicaSet": "replicasets",
    "LeaderWorkerSet": "leaderworkersets",
}


class SpecError(ValueError):
    """A ModelScaler's spec could not be read; the message names the fields."""


class _Camel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


@dataclass(frozen=True, slots=True)
class GroupVersionResource:
    group: str
    version: str
    resource: str


class ScaleTargetRef(_Camel):
    api_version: str = Field(pattern=r"^[a-z0-9.-]+/[a-z0-9]+$")
    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)
    resource: str | None = None

    @property
    def gvr(self) -> GroupVersionResource:
        """Where the target's /scale lives, taken from the reference as the HPA does."""
        group, version = self.api_version.split("/", 1)
        plural = self.resource or _KNOWN_PLURALS.get(self.kind) or f"{self.kind.lower()}s"
        return GroupVersionResource(group, version, plural)


class PoolSpec(_Camel):
    name: str = Field(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
    capacity_type: Literal["spot", "on-demand"]
    price_per_hour: float = Field(0.0, ge=0)
    min_replicas: int = Field(0, ge=0)
    max_replicas: int = Field(ge=0)
    scale_target_ref: ScaleTargetRef

    @model_validator(mode="after")
    def _bounds(self) -> PoolSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class SloSpec(_Camel):
    ttft_p95_seconds: float = Field(gt=0)
    itl_p95_seconds: float = Field(gt=0)
    objective: float | None = Field(None, gt=0, lt=1)


class SpotSpec(_Camel):
    over_provision: float = Field(SpotSettings().over_provision, ge=0, le=1)
    spare_window_seconds: float = Field(SpotSettings().spare_window_s, ge=0, le=3600)
    fallback_after_seconds: float = Field(120.0, ge=0)
    replacement_seconds: float = Field(600.0, ge=0)


class CapacityLearningSpec(_Camel):
    enabled: bool = True
    band: float = Field(2.0, ge=1, le=10)


class ScalingRules(_Camel):
    stabilization_window_seconds: float = Field(ge=0, le=3600)
    max_replicas_per_minute: int = Field(ge=1)


class BehaviorSpec(_Camel):
    scale_to_zero: bool = False
    tolerance: float = Field(0.1, ge=0, le=1)
    max_latency_correction: float = Field(2.0, ge=1)
    queue_per_replica: float = Field(8.0, gt=0)
    forecast_seconds: float = Field(0.0, ge=0, le=3600)
    scale_up: ScalingRules = ScalingRules(stabilization_window_seconds=0, max_replicas_per_minute=8)
    scale_down: ScalingRules = ScalingRules(
        stabilization_window_seconds=300, max_replicas_per_minute=2
    )


class ModelScalerSpec(_Camel):
    model: str = Field(min_length=1)
    slo: SloSpec
    capacity_per_replica_rps: float = Field(gt=0)
    capacity_learning: CapacityLearningSpec = CapacityLearningSpec()
    on_demand_floor: int = Field(1, ge=0)
    spot: SpotSpec = SpotSpec()
    behavior: BehaviorSpec = BehaviorSpec()
    pools: tuple[PoolSpec, ...] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _pools(self) -> ModelScalerSpec:
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"pool names must be unique, got {names}")
        if self.on_demand_floor and not any(p.capacity_type == "on-demand" for p in self.pools):
            raise ValueError("an onDemandFloor above 0 needs an on-demand pool")
        return self

    def slo_targets(self) -> Slo:
        return Slo(
            ttft_p95_s=self.slo.ttft_p95_seconds,
            itl_p95_s=self.slo.itl_p95_seconds,
            objective=self.slo.objective,
        )

    def policy_behavior(self) -> Behavior:
        """The pipeline's bounds cover the model's pools together."""
        b = self.behavior
        floor = 0 if b.scale_to_zero else 1
        return Behavior(
            min_replicas=max(floor, sum(p.min_replicas for p in self.pools)),
            max_replicas=sum(p.max_replicas for p in self.pools),
            tolerance=b.tolerance,
            scale_up_window_s=b.scale_up.stabilization_window_seconds,
            scale_down_window_s=b.scale_down.stabilization_window_seconds,
            max_scale_up_per_min=b.scale_up.max_replicas_per_minute,
            max_scale_down_per_min=b.scale_down.max_replicas_per_minute,
            max_latency_correction=b.max_latency_correction,
            queue_per_replica=b.queue_per_replica,
            forecast_lead_s=b.forecast_seconds,
        )

    def learn_settings(self) -> LearnSettings:
        c = self.capacity_learning
        # A backlog, for learning, is what the burst path scales for.
        return LearnSettings(
            enabled=c.enabled, band=c.band, backlog_per_replica=self.behavior.queue_per_replica
        )

    def spot_settings(self) -> SpotSettings:
        return SpotSettings(
            on_demand_floor=self.on_demand_floor,
            over_provision=self.spot.over_provision,
            spare_window_s=self.spot.spare_window_seconds,
            fallback_after_s=self.spot.fallback_after_seconds,
            replacement_s=self.spot.replacement_seconds,
        )


def parse_spec(raw: Mapping[str, Any]) -> ModelScalerSpec:
    try:
        return ModelScalerSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(problems) from exc


def is_paused(metadata: Mapping[str, Any] | None) -> bool:
    annotations = (metadata or {}).get("annotations") or {}
    return str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true"
