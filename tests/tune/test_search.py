"""Brute force against bisection with cost bounds, on outcome tables made up so that the
right answer is known: a group meets the SLO from ``need[group]`` replicas on."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tests.tune.support import group, measured
from workers.tune.outcome import Breached, Outcome
from workers.tune.pareto import recommend
from workers.tune.search import bisect_search, brute_force
from workers.tune.space import Candidate, EngineGroup


def table(
    need: dict[EngineGroup, int | None], price: dict[EngineGroup, float]
) -> tuple[Callable[[Candidate], Outcome], list[Candidate]]:
    """An evaluator that meets the SLO at ``need`` replicas or more (None: never), and the
    list of candidates it was asked about."""
    calls: list[Candidate] = []

    def evaluate(c: Candidate) -> Outcome:
        calls.append(c)
        usd = price[c.group] * c.replicas
        threshold = need[c.group]
        if threshold is None or c.replicas < threshold:
            return Breached(c, usd, 100, 10, "ttft", 6)
        # more replicas: a little faster, so they are on the front too
        return measured(c.group, c.replicas, usd=usd, ttft=1.0 / c.replicas, goodput=1000)

    return evaluate, calls


A, B, C = group("a"), group("b"), group("c")


def test_bisection_finds_the_fewest_replicas_and_prunes_what_cannot_win() -> None:
    need: dict[EngineGroup, int | None] = {A: 5, B: 2, C: None}
    price = {A: 1.0, B: 6.0, C: 2.0}
    evaluate, calls = table(need, price)
    result = bisect_search([A, B, C], 16, evaluate, lambda g: price[g])
    best = recommend(result.outcomes)
    assert best is not None and best.candidate == Candidate(A, 5)
    # A: probe 16, then bisect 8, 4, 6, 5; C (cap 2): one probe; B (cap 1): not simulated
    assert calls == [Candidate(A, r) for r in (16, 8, 4, 6, 5)] + [Candidate(C, 2)]
    assert result.judged == 6
    assert "not simulated: one replica costs $6.00/h" in result.skipped[B]
    assert "more would cost more: a tp1 seqs64 mbt2048 x5 costs $5.00/h" in result.skipped[C]


def test_equal_costs_are_still_simulated_so_ties_break_as_in_brute_force() -> None:
    # A x2 and B x1 both cost $2/h; B x1 has more goodput per dollar (it is faster).
    need: dict[EngineGroup, int | None] = {A: 2, B: 1}
    price = {A: 1.0, B: 2.0}
    evaluate, _ = table(need, price)
    bisected = recommend(bisect_search([A, B], 4, evaluate, lambda g: price[g]).outcomes)
    brute = recommend(brute_force([A, B], 4, evaluate).outcomes)
    assert bisected == brute


def test_nothing_meets_the_slo() -> None:
    evaluate, calls = table({A: None, B: None}, {A: 1.0, B: 2.0})
    result = bisect_search([A, B], 8, evaluate, lambda g: 1.0)
    assert recommend(result.outcomes) is None
    assert len(calls) == 2 and result.skipped == {}  # one probe at the cap each


def test_brute_force_simulates_everything() -> None:
    evaluate, calls = table({A: 3, B: 1}, {A: 1.0, B: 2.0})
    assert brute_force([A, B], 4, evaluate).judged == 8 == len(calls)


@pytest.mark.parametrize("seed", range(200))
def test_same_recommendation_as_brute_force_on_random_monotone_tables(seed: int) -> None:
    rng = random.Random(seed)
    groups = [group(f"g{i}", tp=rng.choice([1, 2, 4])) for i in range(rng.randint(1, 8))]
    need = {g: rng.choice([None, *range(1, 13)]) for g in groups}
    price = {g: rng.choice([1.0, 1.5, 2.0, 3.0]) * g.tp for g in groups}
    max_replicas = rng.randint(1, 12)
    evaluate, _ = table(need, price)
    brute = brute_force(groups, max_replicas, evaluate)
    bisected = bisect_search(groups, max_replicas, evaluate, lambda g: price[g])
    assert recommend(bisected.outcomes) == recommend(brute.outcomes)
    assert bisected.judged <= brute.judged
