"""Table-driven tests of each scaling step, on a fake clock (minutes pass in microseconds)."""

from __future__ import annotations

import pytest

from autoscaler.policy.observation import Observation, Slo
from autoscaler.policy.pipeline import Behavior, History, decide

SLO = Slo(ttft_p95_s=1.0, itl_p95_s=0.05)
FAST = Behavior(scale_down_window_s=0, max_scale_up_per_min=100, max_scale_down_per_min=100)


@pytest.mark.parametrize(
    ("obs", "capacity", "expected", "decided_by"),
    [
        (Observation(0, 4, arrival_rps=10.0), 2.0, 5, "demand"),
        (Observation(0, 4, arrival_rps=8.0), 2.0, 4, "current"),
        (Observation(0, 4, arrival_rps=8.0, ttft_p95_s=1.5), 2.0, 6, "latency"),
        (Observation(0, 4, arrival_rps=8.0, ttft_p95_s=9.0), 2.0, 8, "latency"),  # capped 2x
        (Observation(0, 4, arrival_rps=8.0, itl_p95_s=0.075), 2.0, 6, "latency"),
        (Observation(0, 4, arrival_rps=8.0, queued=100), 2.0, 13, "burst"),
        (Observation(0, 4, arrival_rps=8.0, queued=20), 2.0, 4, "current"),  # absorbed
        (Observation(0, 10, arrival_rps=2.0), 2.0, 1, "demand"),
        (Observation(0, 10, arrival_rps=None), 2.0, 10, "current"),  # missing: hold
        (Observation(0, 10, arrival_rps=2.0, fresh=False), 2.0, 10, "hold"),  # stale: hold
        (Observation(0, 10, arrival_rps=21.0), 2.0, 10, "tolerance"),  # 11 is within 10%
        (Observation(0, 10, arrival_rps=500.0), 2.0, 100, "bounds"),
        (Observation(0, 1, arrival_rps=0.0), 2.0, 1, "bounds"),  # min 1
    ],
)
def test_single_decisions(obs, capacity, expected, decided_by):
    decision = decide(obs, SLO, capacity, FAST)
    assert decision.replicas == expected
    assert decision.decided_by.name == decided_by
    assert all(step.why for step in decision.steps)


def run(observations, behavior, capacity=1.0):
    history, out = History(), []
    for obs in observations:
        decision = decide(obs, SLO, capacity, behavior, history)
        history = history.record(decision, obs.at)
        out.append(decision.replicas)
    return out


def test_scale_down_waits_for_the_highest_recommendation_of_the_window():
    behavior = Behavior(scale_down_window_s=300, max_scale_down_per_min=100)
    # Demand falls from 10 to 2 at t=60; replicas follow only once 300 s have passed.
    obs = [Observation(t, 10, arrival_rps=10.0 if t < 60 else 2.0) for t in range(0, 600, 30)]
    replicas = run(obs, behavior)
    assert replicas[:12] == [10] * 12  # t < 360: 10 was recommended inside the window
    assert replicas[-1] == 2


def test_scale_up_is_immediate_by_default_and_rate_limited():
    behavior = Behavior(max_scale_up_per_min=4, scale_down_window_s=0)
    obs = [Observation(t, 2, arrival_rps=20.0) for t in (0, 10, 20, 70, 140)]
    assert run(obs, behavior) == [6, 6, 6, 10, 14]


def test_scale_up_window_ignores_a_one_sample_spike():
    behavior = Behavior(scale_up_window_s=60, scale_down_window_s=0, max_scale_up_per_min=100)
    obs = [
        Observation(0, 4, arrival_rps=4.0),
        Observation(15, 4, arrival_rps=40.0),
        Observation(30, 4, arrival_rps=4.0),
    ]
    assert run(obs, behavior) == [4, 4, 4]


def test_a_scale_up_the_slo_asks_for_skips_the_scale_up_window():
    behavior = Behavior(scale_up_window_s=120, scale_down_window_s=0, max_scale_up_per_min=100)
    calm = Observation(0, 4, arrival_rps=4.0)
    # demand alone (a spike in the arrival rate) waits out the window ...
    assert run([calm, Observation(15, 4, arrival_rps=6.0)], behavior) == [4, 4]
    # ... latency over the SLO does not: the SLO is being missed now
    assert run([calm, Observation(15, 4, arrival_rps=4.0, ttft_p95_s=1.5)], behavior) == [4, 6]
    # nor does a queue
    assert run([calm, Observation(15, 4, arrival_rps=4.0, queued=80)], behavior) == [4, 10]
    # nor demand while the SLO is missed, though the correction asks for no more than it
    steady = Observation(0, 4, arrival_rps=8.0)  # 2 req/s per replica: 4
    ramp = Observation(15, 4, arrival_rps=10.0, ttft_p95_s=1.2)  # demand 5, latency 5
    assert run([steady, ramp], behavior, capacity=2.0) == [4, 5]
    assert run([steady, Observation(15, 4, arrival_rps=10.0)], behavior, capacity=2.0) == [4, 4]


BUDGET = Slo(ttft_p95_s=1.0, itl_p95_s=0.05, objective=0.99)


@pytest.mark.parametrize(
    ("miss", "slo", "ttft", "expected", "decided_by"),
    [
        (0.005, BUDGET, 0.9, 4, "current"),  # within the 1% budget
        (0.25, BUDGET, 0.9, 5, "latency"),  # a quarter of the demand short: 4 x 1.25
        (0.9, BUDGET, 0.9, 8, "latency"),  # capped at 2x
        (0.25, SLO, 0.9, 4, "current"),  # no objective: the p95s alone decide
        # With an objective the share decides, not the p95s: a p95 at 3x its target
        (0.25, BUDGET, 3.0, 5, "latency"),  # corrects by the share (not 2x: 8)
        (0.005, BUDGET, 3.0, 4, "current"),  # and within the budget, not at all
        (None, BUDGET, 3.0, 8, "latency"),  # no share known: the p95s decide
    ],
)
def test_the_share_of_requests_missing_the_slo_corrects_like_latency(
    miss, slo, ttft, expected, decided_by
):
    obs = Observation(0, 4, arrival_rps=8.0, ttft_p95_s=ttft, miss_share=miss)
    decision = decide(obs, slo, 2.0, FAST)
    assert (decision.replicas, decision.decided_by.name) == (expected, decided_by)


def test_scale_down_is_rate_limited_too():
    behavior = Behavior(scale_down_window_s=0, max_scale_down_per_min=2)
    obs = [Observation(t, 10, arrival_rps=1.0) for t in (0, 20, 40, 61, 122)]
    assert run(obs, behavior) == [8, 8, 8, 6, 4]


def test_scale_from_zero_on_the_first_held_request():
    to_zero = Behavior(min_replicas=0, scale_down_window_s=0)
    idle = decide(Observation(0, 0, arrival_rps=0.0, queued=0), SLO, 2.0, to_zero)
    assert idle.replicas == 0
    woken = decide(Observation(0, 0, arrival_rps=0.0, queued=1), SLO, 2.0, to_zero)
    assert woken.replicas == 1 and woken.decided_by.name == "burst"


@pytest.mark.parametrize(("requests", "expected"), [(200.0, 4), (10_000.0, 5), (None, 5)])
def test_a_miss_share_corrects_only_when_it_is_more_than_noise(requests, expected):
    # 1.5% missing against a 1% budget: within two standard deviations of it for 200
    # requests (2.4%), beyond them for 10,000 (1.2%); the budget alone with no count.
    obs = Observation(0, 4, arrival_rps=8.0, miss_share=0.015, window_requests=requests)
    assert decide(obs, BUDGET, 2.0, FAST).replicas == expected
