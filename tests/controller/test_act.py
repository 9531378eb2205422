"""Setting a pool's replicas: written only when it changes, retried on conflict, never over
a pause that arrived meanwhile."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autoscaler.controller.act import apply_replicas
from autoscaler.controller.api import KubeError
from autoscaler.controller.spec import ScaleTargetRef
from tests.controller.support import FakeTarget, MemoryApi

REF = ScaleTargetRef(api_version="apps/v1", kind="Deployment", name="llama-spot")


class Interfering(MemoryApi):
    """Before each of the first ``times`` writes, someone else changes the target."""

    def __init__(
        self, target: FakeTarget, times: int, change: Callable[[FakeTarget], None]
    ) -> None:
        super().__init__(targets={"llama-spot": target})
        self.times = times
        self.change = change

    def set_replicas(
        self, namespace: str, ref: ScaleTargetRef, replicas: int, resource_version: str
    ) -> None:
        if self.times:
            self.times -= 1
            target = self.targets[ref.name]
            self.change(target)
            target.version += 1
        super().set_replicas(namespace, ref, replicas, resource_version)


def bump(target: FakeTarget) -> None:
    target.annotations["rollout"] = "restarted"


@pytest.mark.parametrize(
    ("start", "times", "change", "outcome", "detail", "final", "writes"),
    [
        (4, 0, bump, "unchanged", "Deployment/llama-spot at 4", 4, 0),
        (1, 0, bump, "scaled", "Deployment/llama-spot 1 -> 4", 4, 1),
        (1, 1, bump, "scaled", "Deployment/llama-spot 1 -> 4 after 1 conflict", 4, 1),
        (1, 3, bump, "scaled", "Deployment/llama-spot 1 -> 4 after 3 conflicts", 4, 1),
        (1, 9, bump, "failed", "Deployment/llama-spot: gave up after 5 conflicts", 1, 0),
        (
            1,
            1,
            lambda t: t.annotations.update({"tidegate.dev/paused": "true"}),
            "paused",
            "Deployment/llama-spot paused: left at 1",
            1,
            0,
        ),
        (
            1,
            1,
            lambda t: setattr(t, "replicas", 4),
            "unchanged",
            "Deployment/llama-spot at 4 after 1 conflict",
            4,
            0,
        ),
    ],
)
def test_apply_replicas(
    start: int,
    times: int,
    change: Callable[[FakeTarget], None],
    outcome: str,
    detail: str,
    final: int,
    writes: int,
) -> None:
    target = FakeTarget(replicas=start, ready=1)
    api = Interfering(target, times, change)
    read = api.read_target("llm", REF)
    action = apply_replicas(api, "llm", "spot", REF, 4, read)
    assert (action.outcome, action.detail) == (outcome, detail)
    assert target.replicas == final
    assert len(api.writes) == writes


def test_a_vanished_target_or_an_api_error_is_reported_not_raised() -> None:
    api = MemoryApi(targets={"llama-spot": FakeTarget(1, 1)})
    read = api.read_target("llm", REF)
    del api.targets["llama-spot"]
    assert apply_replicas(api, "llm", "spot", REF, 3, read).outcome == "missing"

    class Broken(MemoryApi):
        def set_replicas(self, *args: object) -> None:
            raise KubeError("scale Deployment llm/llama-spot: 403 Forbidden", 403)

    action = apply_replicas(Broken(), "llm", "spot", REF, 3, read)
    assert (action.outcome, action.detail) == (
        "failed",
        "Deployment/llama-spot: scale Deployment llm/llama-spot: 403 Forbidden",
    )
