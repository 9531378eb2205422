"""Which pods go on scale-down: the pure choice, on pods from the recorded events, and the
loop marking them before it lowers /scale."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from autoscaler.controller.disruption import DELETION_COST, Disruptions, PodFacts, observe_pod
from autoscaler.controller.drain import choose_leaving, deletion_costs
from autoscaler.controller.loop import Controller
from tests.controller.support import (
    RECORDED_EVENTS,
    T0,
    FakeClock,
    FakeTarget,
    FixedSignals,
    MemoryApi,
    pool,
    scaler_object,
    scaler_spec,
)

EVENTS = RECORDED_EVENTS
LISTED_POD = EVENTS[1]["object"]  # a ready llama-spot pod as the API serves it


def served_pod(name: str, created: str, *, ready: bool = True, cost: str | None = None) -> Any:
    pod = copy.deepcopy(LISTED_POD)
    pod["metadata"]["name"] = f"llama-spot-6b8f9c7d54-{name}"
    pod["metadata"]["creationTimestamp"] = created
    if cost is not None:
        pod["metadata"]["annotations"] = {DELETION_COST: cost}
    for c in pod["status"]["conditions"]:
        if c["type"] == "Ready":
            c["status"] = "True" if ready else "False"
    return pod


def facts(*pods: Any) -> tuple[PodFacts, ...]:
    state = Disruptions()
    for pod in pods:
        state, _ = observe_pod(state, "ADDED", pod, T0)
    return state.pods_of("llm", "llama-spot")


OLD = served_pod("old", "2027-01-15T06:00:00Z")
MID = served_pod("mid", "2027-01-15T07:00:00Z")
NEW = served_pod("new", "2027-01-15T07:50:00Z")
UNREADY = served_pod("unready", "2027-01-15T05:00:00Z", ready=False)


def short(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n.rsplit("-", 1)[1] for n in names)


@pytest.mark.parametrize(
    ("pods", "remove", "load", "leaving"),
    [
        ((OLD, MID, NEW), 1, {}, ("new",)),  # youngest first: the least warm cache
        ((OLD, MID, NEW), 2, {}, ("new", "mid")),
        ((OLD, MID, NEW), 0, {}, ()),
        ((OLD, MID, NEW), 1, {"llama-spot-6b8f9c7d54-new": 9.0}, ("mid",)),  # least loaded
        ((OLD, MID, NEW, UNREADY), 1, {}, ("unready",)),  # not serving: first
        ((OLD, NEW), 5, {}, ("new", "old")),  # fewer pods than asked
    ],
)
def test_choose_leaving(
    pods: tuple[Any, ...], remove: int, load: Mapping[str, float], leaving: tuple[str, ...]
) -> None:
    assert short(choose_leaving(facts(*pods), remove, load)) == leaving


def test_a_pod_losing_its_node_goes_first() -> None:
    noticed = copy.deepcopy(EVENTS[11]["object"])  # DisruptionTarget, still ready
    noticed["metadata"]["creationTimestamp"] = "2027-01-15T04:00:00Z"
    assert short(choose_leaving(facts(OLD, NEW, noticed), 1)) == ("abcde",)


def test_costs_mark_the_leaving_clear_stale_marks_and_repeat_nothing() -> None:
    pods = facts(OLD, MID, NEW)
    assert deletion_costs(pods, 2) == {
        "llama-spot-6b8f9c7d54-new": "-1000",
        "llama-spot-6b8f9c7d54-mid": "-999",
    }
    marked = facts(OLD, served_pod("mid", "2027-01-15T07:00:00Z", cost="-999"), NEW)
    assert deletion_costs(marked, 1) == {
        "llama-spot-6b8f9c7d54-new": "-1000",
        "llama-spot-6b8f9c7d54-mid": None,  # no longer chosen: the mark goes
    }
    done = facts(OLD, MID, served_pod("new", "2027-01-15T07:50:00Z", cost="-1000"))
    assert deletion_costs(done, 1) == {}
    # Someone else's cost is theirs: never removed.
    theirs = facts(served_pod("old", "2027-01-15T06:00:00Z", cost="500"), MID)
    assert deletion_costs(theirs, 0) == {}


class RecordingPods:
    def __init__(self, api: MemoryApi) -> None:
        self.api = api
        self.calls: list[tuple[str, Mapping[str, str | None], list[tuple[str, int]]]] = []

    def annotate_pod(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        self.calls.append((name, dict(annotations), list(self.api.writes)))


async def test_pods_are_marked_before_the_pool_is_lowered() -> None:
    pools = [pool("spot", "spot", "llama-spot", price=1.4, max_replicas=8)]
    spec = scaler_spec(pools, onDemandFloor=0, spot={"overProvision": 0})
    api = MemoryApi([scaler_object("llama", spec)], {"llama-spot": FakeTarget(3, 3)})
    pods = RecordingPods(api)
    controller = Controller(api, FixedSignals(llama={"arrival_rps": 4.0}), FakeClock(), pods=pods)
    for pod in (OLD, MID, NEW):
        controller.observe("pod", "ADDED", pod)
    await controller.reconcile_all()
    assert api.writes == [("llama-spot", 2)]  # 4 req/s at 2 per replica
    assert pods.calls == [
        # Marked while /scale was still untouched.
        ("llama-spot-6b8f9c7d54-new", {DELETION_COST: "-1000"}, []),
    ]
