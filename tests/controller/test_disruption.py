"""Spot preemption and termination notices, from pod and node events.

``recorded/disruption-events.json`` is a sequence of watch events in the shape the Pods
and Nodes APIs serve them (GKE, AKS and EKS spot nodes getting their notices, a pod the
kubelet shut down, a pod the taint manager deleted, a scale-down): the test API server
serves no Pods or Nodes, so the pure fold is tested on these and the watch adapter kept
thin."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.controller.disruption import (
    Disruptions,
    forget_before,
    node_notice,
    observe_node,
    observe_pod,
    pod_facts,
    workload_of,
)
from autoscaler.controller.loop import Controller, run
from autoscaler.controller.reconcile import ScalerObject, TargetState, reconcile
from autoscaler.controller.spec import parse_spec
from autoscaler.controller.watch import watch_disruptions
from autoscaler.policy.observation import Observation
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
SPOT = "llama-spot"


def replay(events: list[dict[str, Any]], state: Disruptions | None = None) -> Disruptions:
    state = state or Disruptions()
    for i, e in enumerate(events):
        fold = observe_pod if e["kind"] == "pod" else observe_node
        state, _ = fold(state, e["type"], e["object"], T0 + i)
    return state


def obj(index: int) -> dict[str, Any]:
    return copy.deepcopy(EVENTS[index]["object"])


def test_pods_map_to_the_workload_a_pool_scales() -> None:
    assert workload_of(obj(1)) == SPOT  # ReplicaSet llama-spot-6b8f9c7d54
    assert workload_of(obj(5)) == "llama-on-demand"
    stateful = {"metadata": {"ownerReferences": [{"kind": "StatefulSet", "name": "llama-lws"}]}}
    stateful["metadata"]["ownerReferences"][0]["controller"] = True
    assert workload_of(stateful) == "llama-lws"
    assert workload_of({"metadata": {}}) == ""


@pytest.mark.parametrize(
    ("index", "notice"),
    [
        (0, None),  # a GKE spot node, no notice yet
        (6, "GKE termination notice"),
        (7, "Azure VM event scheduled"),  # the spot taint alone is no notice; the condition is
        (8, "AWS spot interruption notice"),
    ],
)
def test_node_notices(index: int, notice: str | None) -> None:
    assert node_notice(obj(index)) == notice


@pytest.mark.parametrize(
    ("index", "ready", "disrupted"),
    [
        (1, True, None),
        (9, False, "DisruptionTarget: TerminationByKubelet"),
        (10, False, "DisruptionTarget: TerminationByKubelet"),
        (11, True, "DisruptionTarget: DeletionByTaintManager"),
        (13, True, None),  # a scale-down deletes the pod: no loss
    ],
)
def test_pod_facts(index: int, ready: bool, disrupted: str | None) -> None:
    facts = pod_facts(obj(index))
    assert (facts.ready, facts.disrupted) == (ready, disrupted)


def test_a_failed_shutdown_pod_counts_without_the_condition() -> None:
    pod = obj(10)
    pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
    assert pod_facts(pod).disrupted == "failed: Terminated"


def test_the_recorded_sequence() -> None:
    state, reported = Disruptions(), []
    for i, e in enumerate(EVENTS):
        fold = observe_pod if e["kind"] == "pod" else observe_node
        state, new = fold(state, e["type"], e["object"], T0 + i)
        reported.append([loss.pod[-5:] for loss in new])
    assert reported == [
        *([[]] * 6),  # nodes and pods as listed
        ["abcde"],  # GKE notice
        ["fghij"],  # AKS VM event
        ["klmno"],  # AWS interruption notice
        ["pqrst"],  # shut down by the kubelet
        [],  # pqrst failed: counted already
        [],  # abcde deleted by the taint manager: counted already
        [],
        [],  # the on-demand pod removed by a scale-down: no loss
    ]
    # abcde is gone, pqrst is no longer ready: two ready replicas still about to go.
    assert state.lost_now("llm", SPOT) == 2
    assert state.loss_times("llm", SPOT) == (T0 + 6, T0 + 7, T0 + 8, T0 + 9)
    assert state.lost_now("llm", "llama-on-demand") == 0
    assert state.lost_now("other", SPOT) == 0


def test_a_withdrawn_notice_gives_the_pods_back() -> None:
    state = replay(EVENTS[:9])
    assert state.lost_now("llm", SPOT) == 3
    cleared = obj(8)
    cleared["spec"]["taints"] = []
    state, new = observe_node(state, "MODIFIED", cleared, T0 + 20)
    assert new == () and state.lost_now("llm", SPOT) == 2
    assert "ip-10-0-1-7.ec2.internal" not in state.noticed


def test_a_deleted_node_loses_its_pods_and_pods_arriving_on_a_noticed_node_are_lost() -> None:
    state = replay(EVENTS[:6])
    state, new = observe_node(state, "DELETED", obj(0), T0 + 10)
    assert [loss.reason for loss in new] == ["node deleted on gke-spot-l4-a1"]
    state = replay(EVENTS[6:7], Disruptions())
    state, new = observe_pod(state, "ADDED", obj(1), T0 + 11)
    assert [loss.reason for loss in new] == ["GKE termination notice"]


def test_old_losses_are_forgotten_once_their_pods_are_gone() -> None:
    state = replay(EVENTS)
    later = forget_before(state, T0 + 3600)
    # fghij, klmno and the failed pqrst are still there: kept; abcde is gone: forgotten.
    assert sorted(x.pod[-5:] for x in later.losses) == ["fghij", "klmno", "pqrst"]
    assert forget_before(later, T0) is later


POOLS = [
    pool("on-demand", "on-demand", "llama-on-demand", price=4.0, min_replicas=1, max_replicas=8),
    pool("spot", "spot", SPOT, price=1.4, max_replicas=12),
]


def test_losses_reach_the_capacity_plan() -> None:
    scaler = ScalerObject("llm", "llama", parse_spec(scaler_spec(POOLS)), 1)
    targets = {"on-demand": TargetState(1, 1, 1), "spot": TargetState(5, 5, 5)}
    signals = Observation(T0 + 20, 6, arrival_rps=10.0)
    calm = reconcile(scaler, targets, signals, None, T0 + 20)
    assert calm.plan.replicas == {"on-demand": 1, "spot": 5}
    hit = reconcile(scaler, targets, signals, None, T0 + 20, replay(EVENTS))
    assert hit.plan.replicas == {"on-demand": 1, "spot": 7}  # 2 replacements started now
    assert "spot: +2 replacing replicas being lost" in hit.plan.reasons
    # Spot pending too: short now. Spot is held at its 5 ready, 2 of them going: 3 usable
    # of the 4 wanted beyond the floor, so on-demand takes the 1 short at once.
    pending = {"on-demand": TargetState(1, 1, 1), "spot": TargetState(7, 7, 5)}
    short = reconcile(scaler, pending, signals, None, T0 + 20, replay(EVENTS))
    assert short.plan.replicas == {"on-demand": 2, "spot": 5}
    assert "spot: spot pending after 4 lost in 120s, held at its 5 ready" in short.plan.reasons


async def test_a_loss_wakes_the_loop_at_once() -> None:
    """The interval is an hour; the pass after a notice runs without waiting for it."""
    clock = FakeClock(T0)
    api = MemoryApi(
        [scaler_object("llama", scaler_spec(POOLS))],
        {"llama-on-demand": FakeTarget(1, 1), SPOT: FakeTarget(5, 5)},
    )
    controller = Controller(api, FixedSignals(llama={"arrival_rps": 10.0}), clock)
    stop, wake = asyncio.Event(), asyncio.Event()
    passes = 0

    def tick() -> None:
        nonlocal passes
        passes += 1
        if passes == 1:
            for e in EVENTS[:9]:
                if controller.observe(e["kind"], e["type"], e["object"]):
                    wake.set()
        else:
            stop.set()

    await asyncio.wait_for(run(controller, 3600.0, stop, None, tick, wake), timeout=30)
    assert passes == 2
    assert api.writes[-1] == (SPOT, 8)  # 5 + 3 replacements for the noticed replicas
    status = api.statuses["llama"]
    spot = {p["name"]: p for p in status["pools"]}["spot"]
    assert (spot["lostReplicas"], spot["recentLosses"]) == (3, 3)


async def test_watch_events_reach_the_controller_and_wake_it() -> None:
    done = threading.Event()

    def pods() -> Iterator[tuple[str, dict[str, Any]]]:
        for e in EVENTS:
            if e["kind"] == "pod":
                yield e["type"], e["object"]
        done.wait(30)  # a watch blocks until it times out

    def nodes() -> Iterator[tuple[str, dict[str, Any]]]:
        yield "ADDED", obj(0)
        yield "MODIFIED", obj(6)  # GKE notice: abcde is lost
        done.wait(30)

    controller = Controller(MemoryApi(), FixedSignals(), FakeClock())
    stop, wake = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        watch_disruptions({"pod": pods, "node": nodes}, controller, wake, stop)
    )
    try:
        await asyncio.wait_for(wake.wait(), timeout=30)
    finally:
        stop.set()
        done.set()
        await task
    assert controller.disruptions.losses


async def test_a_failing_watch_is_started_again() -> None:
    calls = 0
    done = threading.Event()

    def pods() -> Iterator[tuple[str, dict[str, Any]]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("connection reset")
        yield "MODIFIED", obj(9)
        done.wait(30)

    controller = Controller(MemoryApi(), FixedSignals(), FakeClock())
    stop, wake = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(watch_disruptions({"pod": pods}, controller, wake, stop, 0.0))
    try:
        await asyncio.wait_for(wake.wait(), timeout=30)
    finally:
        stop.set()
        done.set()
        await task
    assert calls == 2
