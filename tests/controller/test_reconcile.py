"""The pure reconciler, table-driven on a fake clock: spec + targets + signals + memory +
now in, replicas per pool and what to remember out."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.controller.reconcile import (
    Memory,
    ScalerObject,
    TargetState,
    reconcile,
    seed_memory,
)
from autoscaler.controller.spec import parse_spec
from autoscaler.policy.observation import Observation
from autoscaler.policy.pipeline import History
from tests.controller.support import T0, pool, scaler_spec

POOLS = [
    pool("on-demand", "on-demand", "od", price=4.0, min_replicas=1, max_replicas=4),
    pool("spot", "spot", "sp", price=1.4, max_replicas=8),
]


def scaler(paused: bool = False, status: dict[str, Any] | None = None, **spec: Any) -> ScalerObject:
    raw = scaler_spec(spec.pop("pools", POOLS), **spec)
    return ScalerObject("llm", "llama", parse_spec(raw), 1, paused, status or {})


def state(replicas: int, ready: int | None = None, paused: bool = False) -> TargetState:
    return TargetState(replicas, replicas, replicas if ready is None else ready, "1", paused)


def obs(**signals: Any) -> Observation:
    ready = signals.pop("ready", 2)
    return Observation(at=signals.pop("at", T0), ready_replicas=ready, **signals)


@pytest.mark.parametrize(
    ("name", "kw", "targets", "signals", "memory", "desired", "decided_by"),
    [
        (
            "demand goes to spot, the floor stays on-demand",
            {},
            {"on-demand": state(1), "spot": state(1)},
            obs(arrival_rps=10.0),
            None,
            {"on-demand": 1, "spot": 5},  # 5 wanted: 1 on-demand, 4 spot + 1 over-provision
            "demand",
        ),
        (
            "no arrival rate: keep the count",
            {},
            {"on-demand": state(1), "spot": state(3)},
            obs(ready=4),
            None,
            {"on-demand": 1, "spot": 4},  # 3 wanted on spot, +1 over-provision
            "current",
        ),
        (
            "stale signals never scale down",
            {},
            {"on-demand": state(1), "spot": state(5)},
            obs(ready=6, arrival_rps=0.5, fresh=False),
            Memory(History(last_replicas=6)),
            {"on-demand": 1, "spot": 6},
            "hold",
        ),
        (
            "latency over the SLO adds replicas",
            {},
            {"on-demand": state(1), "spot": state(3)},
            obs(ready=4, arrival_rps=8.0, ttft_p95_s=1.5),
            Memory(History(last_replicas=4)),
            {"on-demand": 1, "spot": 6},  # 4 x 1.5 = 6: 5 on spot + 1
            "latency",
        ),
        (
            "a paused target is left out, the rest planned around it",
            {},
            {"on-demand": state(1), "spot": state(3, paused=True)},
            obs(ready=4, arrival_rps=10.0),
            None,
            {"on-demand": 2},  # 5 wanted, the paused 3 count: on-demand takes the other 1
            "demand",
        ),
        (
            "a missing target is not planned",
            {},
            {"on-demand": state(1), "spot": None},
            obs(ready=1, arrival_rps=6.0),
            None,
            {"on-demand": 3},  # spot gone: on-demand takes all 3
            "demand",
        ),
        (
            "spot pending past the fallback: on-demand covers",
            {},
            {"on-demand": state(1), "spot": state(5, ready=1)},
            obs(ready=2, arrival_rps=10.0),
            Memory(History(last_replicas=6), (("spot", T0 - 200),)),
            {"on-demand": 4, "spot": 1},
            "demand",
        ),
        (
            "scale to zero when allowed and idle",
            {
                "onDemandFloor": 0,
                "pools": [pool("spot", "spot", "sp", price=1.0)],
                "behavior": {
                    "scaleToZero": True,
                    "scaleDown": {"stabilizationWindowSeconds": 0, "maxReplicasPerMinute": 10},
                },
            },
            {"spot": state(1)},
            obs(ready=1, arrival_rps=0.0),
            None,
            {"spot": 0},
            "demand",
        ),
        (
            "one replica kept without scale to zero",
            {"onDemandFloor": 0, "pools": [pool("spot", "spot", "sp", price=1.0)]},
            {"spot": state(1)},
            obs(ready=1, arrival_rps=0.0),
            None,
            {"spot": 2},  # 1 replica, +1 over-provision
            "bounds",
        ),
        (
            # Held requests start replicas from zero (the burst path), one per share of the
            # queue beyond the first.
            "held requests start replicas from zero",
            {
                "onDemandFloor": 0,
                "pools": [pool("spot", "spot", "sp", price=1.0)],
                "behavior": {"scaleToZero": True},
            },
            {"spot": state(0)},
            obs(ready=0, arrival_rps=0.0, queued=20),
            None,
            {"spot": 3},  # burst: ceil(20 / 8) - 1 = 2 more, +1 over-provision
            "burst",
        ),
    ],
)
def test_one_reconcile(
    name: str,
    kw: dict[str, Any],
    targets: dict[str, TargetState | None],
    signals: Observation,
    memory: Memory | None,
    desired: dict[str, int],
    decided_by: str,
) -> None:
    result = reconcile(scaler(**kw), targets, signals, memory, T0)
    assert result.desired == desired, name
    assert result.decided_by == decided_by, name
    assert all(step.why for step in result.decision.steps)


def test_a_paused_scaler_plans_but_touches_nothing() -> None:
    result = reconcile(
        scaler(paused=True),
        {"on-demand": state(1), "spot": state(1)},
        obs(arrival_rps=20.0),
        None,
        T0,
    )
    assert result.desired == {}
    assert result.decision.replicas == 10
    assert result.plan.replicas == {"on-demand": 1, "spot": 1}


def test_pending_replicas_keep_their_age_and_clear_once_ready() -> None:
    targets: dict[str, TargetState | None] = {"on-demand": state(1), "spot": state(1)}
    first = reconcile(scaler(), targets, obs(arrival_rps=10.0), None, T0)
    assert first.pending_since == {"on-demand": None, "spot": T0}  # asked for 5, 1 ready
    targets["spot"] = state(5, ready=2)
    later = reconcile(scaler(), targets, obs(arrival_rps=10.0), first.memory, T0 + 60)
    assert later.pending_since["spot"] == T0
    targets["spot"] = state(5, ready=5)
    done = reconcile(scaler(), targets, obs(arrival_rps=10.0, ready=6), later.memory, T0 + 90)
    assert done.pending_since["spot"] is None and done.memory.pending_since == ()


def test_scale_down_waits_out_the_window_across_passes() -> None:
    """Ten minutes of passes in microseconds: memory carries the window between them."""
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 300, "maxReplicasPerMinute": 10}}
    s = scaler(behavior=behavior, spot={"overProvision": 0, "fallbackAfterSeconds": 120})
    targets: dict[str, TargetState | None] = {"on-demand": state(1), "spot": state(7)}
    memory, replicas = None, []
    for i in range(40):
        t = T0 + 15 * i
        rate = 16.0 if t < T0 + 60 else 4.0
        result = reconcile(s, targets, obs(at=t, ready=8, arrival_rps=rate), memory, t)
        memory = result.memory
        replicas.append(result.decision.replicas)
        targets = {p: state(n) for p, n in result.plan.replicas.items()}
    assert replicas[:24] == [8] * 24  # 8 was recommended within the last 300 s
    assert replicas[-1] == 2


def test_the_spare_pads_demand_once_it_has_held_for_the_window() -> None:
    """Until the controller has seen the spare window, the spare is a share of the spot
    replicas; then it pads the lowest demand of the window, rounded up once."""
    s = scaler(spot={"overProvision": 0.3, "spareWindowSeconds": 120})
    targets: dict[str, TargetState | None] = {"on-demand": state(1), "spot": state(4)}
    memory, plans = None, []
    for i in range(10):  # 8.4 req/s at 2 per replica: 4.2 replicas' worth, 3.2 on spot
        t = T0 + 15 * i
        result = reconcile(s, targets, obs(at=t, ready=5, arrival_rps=8.4), memory, t)
        memory = result.memory
        plans.append(result.plan.replicas["spot"])
    assert plans[0] == 4 + 2  # 4 planned + ceil(4 x 0.3)
    assert plans[-1] == 5  # ceil(3.2 x 1.3): one spare
    assert any("spare on spot" in r for r in result.plan.reasons)


def test_memory_is_seeded_from_the_status_a_previous_controller_wrote() -> None:
    status = {
        "lastDecision": {"replicas": 6},
        "pools": [{"name": "spot", "pendingSince": "2027-01-15T07:58:00Z"}, {"name": "on-demand"}],
    }
    memory = seed_memory(status, T0)
    assert memory.history.last_replicas == 6
    assert memory.history.recommendations == ((T0, 6),)  # the scale-down window restarts
    assert memory.pending("spot") == T0 - 120
    result = reconcile(
        scaler(status=status), {"on-demand": state(1), "spot": state(5)}, obs(ready=6), None, T0
    )
    assert result.decision.steps[0].replicas == 6
    assert seed_memory({}, T0) == Memory()


def test_the_log_line_names_the_deciding_step() -> None:
    s = scaler()
    result = reconcile(
        s, {"on-demand": state(1), "spot": state(1)}, obs(arrival_rps=10.0), None, T0
    )
    assert result.log_line(s) == (
        "llm/llama model=llama replicas 2 -> 5 set by demand "
        "(10.00 req/s at 2.00 req/s per replica (the prior)); pools on-demand=1 spot=5"
    )


@pytest.mark.parametrize(
    ("saved", "spec", "capacity", "replicas"),
    [
        ({"learnedRps": 2.5, "priorRps": 2.0, "samples": 5}, {}, 2.5, 4),  # resumed
        ({"learnedRps": 2.5, "priorRps": 1.0, "samples": 5}, {}, 2.0, 5),  # prior changed
        ({"learnedRps": 9.0, "priorRps": 2.0, "samples": 5}, {}, 4.0, 3),  # bounded by 2x
        ({}, {}, 2.0, 5),  # nothing learned yet
        (
            {"learnedRps": 2.5, "priorRps": 2.0, "samples": 5},
            {"capacityLearning": {"enabled": False}},
            2.5,  # kept as learned, not learned further
            4,
        ),
    ],
)
def test_a_new_leader_resumes_the_learned_capacity(
    saved: dict[str, Any], spec: dict[str, Any], capacity: float, replicas: int
) -> None:
    s = scaler(status={"capacity": saved}, **spec)
    signals = obs(ready=5, arrival_rps=10.0, ttft_p95_s=0.9)  # 2 each within the SLO
    result = reconcile(s, {"on-demand": state(1), "spot": state(1)}, signals, None, T0)
    assert result.capacity.rps == pytest.approx(capacity)
    assert result.decision.replicas == replicas
    assert result.memory.capacity == result.capacity


def test_the_learned_capacity_carries_over_passes_in_memory() -> None:
    s = scaler()
    targets = {"on-demand": state(1), "spot": state(3)}
    memory = None
    for i in range(3):  # 4 ready replicas serve 12 req/s within the SLO: at least 3 each
        t = T0 + 60 * i  # a fresh signal window each time (the learner waits one per move)
        signals = obs(at=t, ready=4, arrival_rps=12.0, ttft_p95_s=0.9)
        result = reconcile(s, targets, signals, memory, t)
        memory = result.memory
    assert result.capacity.rps == pytest.approx(3 - 0.8**3)  # 2 -> 2.2 -> 2.36 -> 2.488
    assert result.capacity.samples == 3
    assert result.decision.steps[1].why == (
        "12.00 req/s at 2.49 req/s per replica (learned from 3 intervals, prior 2.00)"
    )


def test_a_rising_arrival_rate_is_forecast_across_passes() -> None:
    # Demand rises 1 req/s per minute; with a six-minute lead the controller sizes for the
    # rate six minutes on, from what earlier passes saw (kept in memory).
    s = scaler(behavior={"forecastSeconds": 360}, capacityLearning={"enabled": False})
    targets = {"on-demand": state(1), "spot": state(4)}
    memory = None
    for i in range(41):  # every 15 s for ten minutes: 10 -> 20 req/s
        t = T0 + 15 * i
        signals = obs(at=t, ready=5, arrival_rps=10.0 + i / 4)
        result = reconcile(s, targets, signals, memory, t)
        memory = result.memory
    assert [r for _, r in result.memory.history.arrivals][-2:] == [19.75, 20.0]
    steps = {step.name: step for step in result.decision.steps}
    assert steps["demand"].replicas == 10  # 20 req/s at 2 each
    assert steps["forecast"].replicas == 13  # 26 req/s in six minutes
    assert "rising 1.00 req/s per min" in steps["forecast"].why
    # Earlier passes forecast too: the fleet is already within 10% of 13.
    assert (result.decision.replicas, result.decided_by) == (12, "tolerance")
