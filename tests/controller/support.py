"""Fakes for the controller tests: a clock, fixed signals, an in-memory API with the
server's optimistic concurrency, and ModelScaler builders."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoscaler.controller.api import Conflict, Json, NotFound
from autoscaler.controller.reconcile import TargetState
from autoscaler.controller.spec import ScaleTargetRef
from autoscaler.policy.observation import Observation

RECORDED_EVENTS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "recorded" / "disruption-events.json").read_text()
)
"""Pod and node watch events in the shape the API serves them (written by hand)."""

T0 = 1_800_000_000.0  # a fixed wall-clock second, so status timestamps are predictable


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FixedSignals:
    """A SignalSource answering what the test sets, per model."""

    def __init__(self, **per_model: Mapping[str, Any]) -> None:
        self.per_model = dict(per_model)
        self.asked: list[dict[str, int]] = []

    async def observe(
        self, ready_replicas: Mapping[str, int], now: float
    ) -> dict[str, Observation]:
        self.asked.append(dict(ready_replicas))
        return {
            m: Observation(at=now, ready_replicas=r, **self.per_model.get(m, {"fresh": False}))
            for m, r in ready_replicas.items()
        }

    async def close(self) -> None:
        return None


def pool(
    name: str,
    capacity_type: str,
    target: str,
    *,
    price: float,
    min_replicas: int = 0,
    max_replicas: int = 10,
    api_version: str = "apps.tidegate.test/v1",
) -> Json:
    return {
        "name": name,
        "capacityType": capacity_type,
        "pricePerHour": price,
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "scaleTargetRef": {"apiVersion": api_version, "kind": "Deployment", "name": target},
    }


def scaler_spec(pools: Sequence[Json], **overrides: Any) -> Json:
    spec: Json = {
        "model": "llama",
        "slo": {"ttftP95Seconds": 1.0, "itlP95Seconds": 0.05},
        "capacityPerReplicaRps": 2.0,
        "onDemandFloor": 1,
        "spot": {"overProvision": 0.1, "fallbackAfterSeconds": 120},
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0, "maxReplicasPerMinute": 10}},
        "pools": list(pools),
    }
    spec.update(overrides)
    return spec


@dataclass
class FakeTarget:
    replicas: int
    ready: int
    version: int = 1
    annotations: dict[str, str] = field(default_factory=dict)


class MemoryApi:
    """ScalerApi in memory, with a real server's 409 on a stale resourceVersion."""

    def __init__(
        self, scalers: Sequence[Json] = (), targets: Mapping[str, FakeTarget] = {}
    ) -> None:
        self.scalers = [copy.deepcopy(s) for s in scalers]
        self.targets = dict(targets)
        self.statuses: dict[str, Json] = {}
        self.writes: list[tuple[str, int]] = []

    def list_scalers(self, namespace: str | None) -> Sequence[Json]:
        return [copy.deepcopy(s) for s in self.scalers]

    def read_target(self, namespace: str, ref: ScaleTargetRef) -> TargetState:
        t = self.targets.get(ref.name)
        if t is None:
            raise NotFound(f"{ref.name} not found")
        return TargetState(
            t.replicas,
            t.replicas,
            t.ready,
            str(t.version),
            t.annotations.get("tidegate.dev/paused") == "true",
        )

    def set_replicas(
        self, namespace: str, ref: ScaleTargetRef, replicas: int, resource_version: str
    ) -> None:
        t = self.targets.get(ref.name)
        if t is None:
            raise NotFound(f"{ref.name} not found")
        if str(t.version) != resource_version:
            raise Conflict(f"{ref.name}: stale resourceVersion {resource_version}")
        t.replicas, t.version = replicas, t.version + 1
        self.writes.append((ref.name, replicas))

    def write_status(self, namespace: str, name: str, status: Json) -> None:
        self.statuses[name] = status
        for s in self.scalers:
            if s["metadata"]["name"] == name:
                s["status"] = copy.deepcopy(status)


def scaler_object(name: str, spec: Json, *, paused: bool = False, namespace: str = "llm") -> Json:
    metadata: Json = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "generation": 1}
    if paused:
        metadata["annotations"] = {"tidegate.dev/paused": "true"}
    return {
        "apiVersion": "tidegate.dev/v1alpha1",
        "kind": "ModelScaler",
        "metadata": metadata,
        "spec": spec,
    }
