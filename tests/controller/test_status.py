"""The status a pass writes: conditions, their transition times, timestamps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoscaler.controller.status import (
    Condition,
    PoolAction,
    action_condition,
    invalid_status,
    merge_conditions,
    observed,
    parse_time,
    rfc3339,
    signal_condition,
)
from autoscaler.policy.observation import Observation, Slo
from tests.controller.support import T0


def test_times_round_trip() -> None:
    assert rfc3339(T0) == "2027-01-15T08:00:00Z"
    assert parse_time("2027-01-15T08:00:00Z") == T0
    assert parse_time("2027-01-15T08:00:00.250000Z") == T0 + 0.25
    for bad in (None, "", "yesterday", 5):
        assert parse_time(bad) is None


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    first = merge_conditions([], [Condition("ScalingActive", True, "SignalsFresh", "ok")], T0, 1)
    assert first[0]["lastTransitionTime"] == rfc3339(T0)
    same = merge_conditions(first, [Condition("ScalingActive", True, "Other", "ok")], T0 + 60, 2)
    assert same[0]["lastTransitionTime"] == rfc3339(T0)
    assert (same[0]["reason"], same[0]["observedGeneration"]) == ("Other", 2)
    flipped = merge_conditions(
        same, [Condition("ScalingActive", False, "SignalsStale", "x")], T0 + 90, 2
    )
    assert flipped[0]["lastTransitionTime"] == rfc3339(T0 + 90)
    assert flipped[0]["status"] == "False"


@pytest.mark.parametrize(
    ("signals", "status", "reason"),
    [
        (Observation(T0, 2, arrival_rps=1.0), True, "SignalsFresh"),
        (Observation(T0, 2, arrival_rps=1.0, fresh=False), False, "SignalsStale"),
        (Observation(T0, 2), False, "SignalsMissing"),
    ],
)
def test_scaling_active_says_whether_signals_can_be_scaled_on(
    signals: Observation, status: bool, reason: str
) -> None:
    condition = signal_condition(signals)
    assert (condition.status, condition.reason) == (status, reason)


@pytest.mark.parametrize(
    ("paused", "outcomes", "status", "reason"),
    [
        (False, ["unchanged", "unchanged"], True, "ReadyForNewScale"),
        (False, ["scaled", "unchanged"], True, "SucceededRescale"),
        (False, ["scaled", "paused"], True, "SucceededRescale"),
        (True, ["paused", "paused"], True, "Paused"),
        (False, ["scaled", "missing"], False, "TargetNotFound"),
        (False, ["failed", "missing"], False, "FailedScale"),
    ],
)
def test_able_to_scale_sums_up_what_happened_to_the_targets(
    paused: bool, outcomes: list[str], status: bool, reason: str
) -> None:
    actions = [PoolAction(f"p{i}", o, f"did {o}") for i, o in enumerate(outcomes)]  # type: ignore[arg-type]
    condition = action_condition(paused, actions)
    assert (condition.status, condition.reason) == (status, reason)


def test_observed_signals_are_rounded_and_missing_ones_null() -> None:
    signals = Observation(T0, 3, arrival_rps=1 / 3, ttft_p95_s=float("nan"), queued=None)
    assert observed(signals) == {
        "time": "2027-01-15T08:00:00Z",
        "fresh": True,
        "readyReplicas": 3,
        "arrivalRps": 0.3333,
        "ttftP95Seconds": None,
        "itlP95Seconds": None,
        "queued": None,
    }
    # With an objective, the miss share it is judged by (null while unknown)
    budget = Slo(ttft_p95_s=1.0, itl_p95_s=0.05, objective=0.99)
    assert observed(signals, budget)["missShare"] is None
    window = ((1.0, 3.0), (float("inf"), 4.0))
    assert observed(replace(signals, ttft_buckets=window), budget)["missShare"] == 0.25
    assert "missShare" not in observed(signals, Slo(ttft_p95_s=1.0, itl_p95_s=0.05))


def test_an_invalid_spec_is_reported_without_losing_other_conditions() -> None:
    previous = {
        "conditions": merge_conditions(
            [],
            [
                Condition("AbleToScale", True, "ReadyForNewScale", ""),
                Condition("ScalingActive", True, "SignalsFresh", ""),
            ],
            T0,
            1,
        )
    }
    status = invalid_status(previous, 2, "pools.0.maxReplicas: Field required", T0 + 5)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["AbleToScale"]["reason"] == "InvalidSpec"
    assert by_type["AbleToScale"]["message"] == "pools.0.maxReplicas: Field required"
    assert by_type["AbleToScale"]["lastTransitionTime"] == rfc3339(T0 + 5)
    assert by_type["ScalingActive"]["reason"] == "SignalsFresh"
    assert status["observedGeneration"] == 2
