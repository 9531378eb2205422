"""Replaying one candidate deployment over the tiny model: early stop, memo, refusals."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from tests.tune.support import CRAMPED, FAST, SLOW, TIGHT, TINY, busy, group, poisson_requests
from workers.sim.engine_config import EngineConfig
from workers.sim.replay import ReplayRequest
from workers.tune.fleet import FleetEvaluator
from workers.tune.outcome import Breached, Measured
from workers.tune.space import EngineGroup, roofline_profiles

PROFILES = roofline_profiles(TINY, {h.name: h for h in (SLOW, FAST, CRAMPED)})
PRICES = {"slow": 1.0, "fast": 3.0}
BASE = EngineConfig(max_model_len=4096)


def evaluator(early_stop: bool, requests: list[ReplayRequest] | None = None) -> FleetEvaluator:
    return FleetEvaluator(requests or busy(), PROFILES, BASE, PRICES, TIGHT, early_stop=early_stop)


@pytest.mark.parametrize(
    ("hardware", "tp", "seqs", "replicas", "meets"),
    [
        ("slow", 1, 4, 1, False),  # queueing: TTFT
        ("slow", 1, 64, 1, False),  # big batches: ITL
        ("slow", 1, 4, 2, False),
        ("slow", 1, 64, 2, True),
        ("slow", 1, 4, 3, True),
        ("fast", 1, 4, 1, False),
        ("fast", 1, 64, 1, True),
        ("slow", 2, 64, 1, True),
    ],
)
def test_early_stop_never_changes_the_verdict(
    hardware: str, tp: int, seqs: int, replicas: int, meets: bool
) -> None:
    candidate = group(hardware, tp, seqs).with_replicas(replicas)
    full, early = evaluator(False)(candidate), evaluator(True)(candidate)
    assert isinstance(full, Measured)
    assert full.meets_slo is early.meets_slo is meets
    if meets:
        assert early == full
    else:
        assert isinstance(early, Breached) and early.finished < early.requests
        assert early.misses > 5 * early.requests // 100 - 1


def test_outcomes_are_memoized_and_priced_per_gpu() -> None:
    evaluate = evaluator(True)
    candidate = group("fast", 2, 64).with_replicas(3)
    first = evaluate(candidate)
    assert evaluate(candidate) is first and evaluate.simulations == 1
    assert first.usd_per_hour == 3.0 * 2 * 3


def test_refused_requests_count_against_ttft_before_anything_runs() -> None:
    long = [ReplayRequest(f"r{i}", i * 0.1, 5000, 10) for i in range(11)]  # > max_model_len
    outcome = evaluator(True, busy() + long)(group("fast", 1, 64).with_replicas(4))
    assert isinstance(outcome, Breached) and outcome.broken == "ttft"
    assert outcome.finished == 0 and outcome.misses == 11  # 211 requests allow 10
    full = evaluator(False, busy() + long)(group("fast", 1, 64).with_replicas(4))
    assert isinstance(full, Measured) and not full.meets_slo and full.requests == 211


def light() -> list[ReplayRequest]:
    return poisson_requests(150, 20.0, seed=3)


def test_larger_limits_that_never_bind_reuse_the_replay_exactly() -> None:
    reusing = FleetEvaluator(light(), PROFILES, BASE, PRICES, TIGHT, reuse=True)
    small = group("fast", 1, 64, 2048).with_replicas(2)
    large = group("fast", 1, 128, 8192).with_replicas(2)
    reusing(small)
    copied = reusing(large)
    assert reusing.simulations == 1 and reusing.same_as == {large: small}
    replayed = FleetEvaluator(light(), PROFILES, BASE, PRICES, TIGHT, reuse=False)(large)
    assert copied == replayed  # step for step the same replay
    # other replica counts, GPUs or tp, or smaller limits, are not copies
    for other in (
        group("fast", 1, 128, 8192).with_replicas(3),
        group("slow", 1, 128, 8192).with_replicas(2),
        group("fast", 2, 128, 8192).with_replicas(2),
        group("fast", 1, 32, 8192).with_replicas(2),
    ):
        reusing(other)
        assert other not in reusing.same_as


@pytest.mark.parametrize(
    ("bound", "larger"),
    [
        (group("slow", 1, 4, 2048), group("slow", 1, 64, 2048)),  # sequences queue at 4
        (group("slow", 1, 64, 64), group("slow", 1, 64, 2048)),  # prompts are cut at 64
    ],
)
def test_limits_that_bound_are_replayed_again(bound: EngineGroup, larger: EngineGroup) -> None:
    evaluate = evaluator(True)
    first, second = evaluate(bound.with_replicas(3)), evaluate(larger.with_replicas(3))
    assert evaluate.simulations == 2 and evaluate.same_as == {}
    assert first != dataclasses.replace(second, candidate=first.candidate)


@pytest.mark.parametrize("requests", [busy, light], ids=["busy", "light"])
def test_reuse_never_changes_an_outcome(requests: Callable[[], list[ReplayRequest]]) -> None:
    grid = [
        group(hw, 1, seqs, mbt).with_replicas(r)
        for hw in ("slow", "fast")
        for r in (1, 2)
        for seqs in (4, 16, 64, 256)
        for mbt in (256, 2048, 8192)
    ]
    reusing = FleetEvaluator(requests(), PROFILES, BASE, PRICES, TIGHT, reuse=True)
    replaying = FleetEvaluator(requests(), PROFILES, BASE, PRICES, TIGHT, reuse=False)
    assert [reusing(c) for c in grid] == [replaying(c) for c in grid]
    assert reusing.same_as  # some were copies
    assert any(isinstance(reusing(c), Breached) for c in reusing.same_as) or requests is light
