"""The ModelScaler spec: parsing, what it means for the policy, and that the CRD's schema
and the code describe the same fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from autoscaler.controller.spec import (
    ModelScalerSpec,
    ScaleTargetRef,
    SpecError,
    is_paused,
    parse_spec,
)
from tests.controller.support import pool, scaler_spec

CRD = Path(__file__).resolve().parents[2] / "helm/tidegate/crds/modelscalers.tidegate.dev.yaml"
POOLS = [
    pool("on-demand", "on-demand", "a", price=4.0, min_replicas=1, max_replicas=4),
    pool("spot", "spot", "b", price=1.4, min_replicas=2, max_replicas=8),
]


@pytest.mark.parametrize(
    ("ref", "group", "version", "resource"),
    [
        ({"apiVersion": "apps/v1", "kind": "Deployment"}, "apps", "v1", "deployments"),
        ({"apiVersion": "apps/v1", "kind": "StatefulSet"}, "apps", "v1", "statefulsets"),
        (
            {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
            "leaderworkerset.x-k8s.io",
            "v1",
            "leaderworkersets",
        ),
        (
            {"apiVersion": "apps.tidegate.test/v1", "kind": "Worker"},
            "apps.tidegate.test",
            "v1",
            "workers",
        ),
        (
            {"apiVersion": "ray.io/v1", "kind": "RayService", "resource": "rayservices"},
            "ray.io",
            "v1",
            "rayservices",
        ),
    ],
)
def test_the_scale_endpoint_comes_from_the_reference(
    ref: dict[str, str], group: str, version: str, resource: str
) -> None:
    gvr = ScaleTargetRef.model_validate({**ref, "name": "x"}).gvr
    assert (gvr.group, gvr.version, gvr.resource) == (group, version, resource)


def test_the_spec_maps_onto_the_policy() -> None:
    spec = parse_spec(
        scaler_spec(
            POOLS,
            behavior={
                "tolerance": 0.2,
                "queuePerReplica": 4,
                "forecastSeconds": 360,
                "scaleUp": {"stabilizationWindowSeconds": 30, "maxReplicasPerMinute": 3},
                "scaleDown": {"stabilizationWindowSeconds": 600, "maxReplicasPerMinute": 1},
            },
        )
    )
    behavior = spec.policy_behavior()
    assert (behavior.min_replicas, behavior.max_replicas) == (3, 12)  # summed over pools
    assert (behavior.scale_up_window_s, behavior.max_scale_up_per_min) == (30, 3)
    assert (behavior.scale_down_window_s, behavior.max_scale_down_per_min) == (600, 1)
    assert (behavior.tolerance, behavior.queue_per_replica) == (0.2, 4)
    assert behavior.forecast_lead_s == 360
    assert spec.learn_settings().backlog_per_replica == 4  # the burst path's backlog
    assert spec.slo_targets().ttft_p95_s == 1.0
    assert spec.spot_settings().fallback_after_s == 120


@pytest.mark.parametrize(
    ("scale_to_zero", "mins", "expected_min"),
    [(False, (0, 0), 1), (True, (0, 0), 0), (True, (1, 0), 1), (False, (2, 3), 5)],
)
def test_scale_to_zero_lowers_the_floor_to_the_pools_minimums(
    scale_to_zero: bool, mins: tuple[int, int], expected_min: int
) -> None:
    pools = [
        pool("on-demand", "on-demand", "a", price=4.0, min_replicas=mins[0]),
        pool("spot", "spot", "b", price=1.4, min_replicas=mins[1]),
    ]
    spec = parse_spec(scaler_spec(pools, behavior={"scaleToZero": scale_to_zero}))
    assert spec.policy_behavior().min_replicas == expected_min


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda s: s["pools"][0].update(minReplicas=5, maxReplicas=1),
            "minReplicas must not exceed",
        ),
        (lambda s: s["pools"].append(dict(s["pools"][0])), "pool names must be unique"),
        (lambda s: s.update(pools=[s["pools"][1]]), "needs an on-demand pool"),
        (lambda s: s["pools"][0].update(capacityType="reserved"), "pools.0.capacityType"),
        (lambda s: s.update(capacityPerReplicaRps=0), "capacityPerReplicaRps"),
        (lambda s: s.update(colour="blue"), "colour"),
    ],
)
def test_a_bad_spec_names_the_field(mutate: Any, message: str) -> None:
    raw = scaler_spec([dict(p) for p in POOLS])
    mutate(raw)
    with pytest.raises(SpecError, match=message):
        parse_spec(raw)


@pytest.mark.parametrize(
    ("metadata", "paused"),
    [
        (None, False),
        ({}, False),
        ({"annotations": {"tidegate.dev/paused": "true"}}, True),
        ({"annotations": {"tidegate.dev/paused": "True"}}, True),
        ({"annotations": {"tidegate.dev/paused": "false"}}, False),
        ({"annotations": {"other": "true"}}, False),
    ],
)
def test_the_paused_annotation(metadata: dict[str, Any] | None, paused: bool) -> None:
    assert is_paused(metadata) is paused


def _schema_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """Property name -> sub-schema's fields (recursively), for objects."""
    if schema.get("type") == "array":
        return _schema_fields(schema["items"])
    props = schema.get("properties") or {}
    return {name: _schema_fields(sub) for name, sub in props.items()}


def _model_fields(model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        inner = next(
            (a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
        out[info.alias or name] = _model_fields(inner) if inner else {}
    return out


def test_the_crd_schema_and_the_spec_model_agree() -> None:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert _schema_fields(spec_schema) == _model_fields(ModelScalerSpec)


def test_the_crd_defaults_are_the_models_defaults() -> None:
    crd = yaml.safe_load(CRD.read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    behavior = spec_schema["properties"]["behavior"]["properties"]
    spot = spec_schema["properties"]["spot"]["properties"]
    model = parse_spec(scaler_spec(POOLS, behavior={}, spot={}))
    assert spec_schema["properties"]["onDemandFloor"]["default"] == 1
    assert (
        model.behavior.scale_down.stabilization_window_seconds
        == behavior["scaleDown"]["properties"]["stabilizationWindowSeconds"]["default"]
    )
    assert (
        model.behavior.scale_down.max_replicas_per_minute
        == behavior["scaleDown"]["properties"]["maxReplicasPerMinute"]["default"]
    )
    assert (
        model.behavior.scale_up.max_replicas_per_minute
        == behavior["scaleUp"]["properties"]["maxReplicasPerMinute"]["default"]
    )
    assert model.behavior.tolerance == behavior["tolerance"]["default"]
    assert model.behavior.queue_per_replica == behavior["queuePerReplica"]["default"]
    assert model.behavior.max_latency_correction == behavior["maxLatencyCorrection"]["default"]
    assert model.behavior.forecast_seconds == behavior["forecastSeconds"]["default"]
    assert model.spot.over_provision == spot["overProvision"]["default"]
    assert model.spot.spare_window_seconds == spot["spareWindowSeconds"]["default"]
    assert model.spot.fallback_after_seconds == spot["fallbackAfterSeconds"]["default"]
    assert model.spot.replacement_seconds == spot["replacementSeconds"]["default"]
    learning = spec_schema["properties"]["capacityLearning"]["properties"]
    assert model.capacity_learning.enabled is learning["enabled"]["default"]
    assert model.capacity_learning.band == learning["band"]["default"]
