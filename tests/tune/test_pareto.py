"""The front, the recommendation and every verdict: pure, on made-up outcomes."""

from __future__ import annotations

import pytest

from tests.tune.support import SLO, group, measured
from workers.tune.outcome import Breached
from workers.tune.pareto import (
    dominates,
    judge,
    pareto_front,
    recommend,
    summarize_groups,
)
from workers.tune.space import Candidate, Misfit

A, B = group("slow"), group("fast")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # cost, ttft, itl of a; then of b
        (dict(usd=1, ttft=0.5, itl=0.02), dict(usd=2, ttft=0.5, itl=0.02), True),
        (dict(usd=1, ttft=0.5, itl=0.02), dict(usd=1, ttft=0.6, itl=0.02), True),
        (dict(usd=1, ttft=0.5, itl=0.02), dict(usd=1, ttft=0.5, itl=0.03), True),
        (dict(usd=1, ttft=0.7, itl=0.02), dict(usd=2, ttft=0.5, itl=0.02), False),  # a trade
        (dict(usd=2, ttft=0.5, itl=0.02), dict(usd=1, ttft=0.5, itl=0.02), False),
        (dict(usd=1, ttft=0.5, itl=0.04), dict(usd=2, ttft=0.6, itl=0.03), False),  # ITL worse
    ],
)
def test_dominates(a: dict[str, float], b: dict[str, float], expected: bool) -> None:
    assert dominates(measured(A, 1, **a), measured(B, 1, **b)) is expected


def test_exact_ties_keep_one_on_the_front_the_one_with_more_goodput_per_dollar() -> None:
    first = measured(A, 1, goodput=1000)
    second = measured(B, 1, goodput=900)
    assert dominates(first, second) and not dominates(second, first)
    assert pareto_front([second, first]) == [first]


def test_full_ties_prefer_the_smaller_limits_not_the_label_order() -> None:
    small = measured(group("slow", 1, 64), 1)
    large = measured(group("slow", 1, 128), 1)  # "seqs128" sorts before "seqs64" as text
    assert pareto_front([large, small]) == [small]
    assert judge(large, [small], SLO).reason == (
        "ties with slow tp1 seqs64 mbt2048 x1 on cost and latency (it ranks first)"
    )


def test_front_keeps_trades_drops_dominated_and_slo_breakers_cheapest_first() -> None:
    cheap = measured(A, 1, usd=1, ttft=0.9, itl=0.04)
    faster = measured(A, 2, usd=2, ttft=0.3, itl=0.03)
    fastest = measured(B, 1, usd=3, ttft=0.1, itl=0.01)
    worse = measured(B, 2, usd=4, ttft=0.2, itl=0.02)  # fastest is cheaper and faster
    breaker = measured(A, 3, usd=0.5, ttft=1.5, itl=0.01, meets=False)
    stopped = Breached(Candidate(B, 3), 0.1, 100, 20, "ttft", 6)
    front = pareto_front([worse, fastest, breaker, faster, cheap, stopped])
    assert front == [cheap, faster, fastest]
    assert recommend([worse, fastest, breaker, faster, cheap, stopped]) == cheap


def test_no_recommendation_when_nothing_meets_the_slo() -> None:
    assert recommend([measured(A, 1, meets=False, ttft=2.0)]) is None
    assert recommend([]) is None


def test_among_equal_costs_the_recommendation_has_the_most_goodput_per_dollar() -> None:
    more = measured(A, 1, usd=1, ttft=0.5, goodput=2000)
    less = measured(B, 1, usd=1, ttft=0.4, itl=0.03, goodput=1000)  # a trade: both on it
    assert pareto_front([less, more]) == [more, less]
    assert recommend([less, more]) == more


@pytest.mark.parametrize(
    ("outcome", "kind", "words"),
    [
        (measured(A, 1, usd=1, ttft=0.9), "recommended", "cheapest"),
        (measured(A, 2, usd=2, ttft=0.3), "front", "$1.00/h more than the recommendation"),
        (measured(B, 2, usd=4, ttft=0.35), "dominated", "slow tp1 seqs64 mbt2048 x2 costs $2.00/h"),
        (measured(B, 1, usd=1, ttft=3.0, meets=False), "slo", "TTFT p95 3 s > 1 s"),
        (measured(B, 1, usd=1, itl=0.09, meets=False), "slo", "ITL p95 0.09 s > 0.05 s"),
        (Breached(Candidate(B, 1), 1, 100, 30, "itl", 6), "slo", "6 misses after 30 of 100"),
    ],
)
def test_verdicts(outcome: object, kind: str, words: str) -> None:
    front = [measured(A, 1, usd=1, ttft=0.9), measured(A, 2, usd=2, ttft=0.3)]
    verdict = judge(outcome, front, SLO)  # type: ignore[arg-type]
    assert verdict.kind == kind
    assert words in verdict.reason


def test_group_summaries_cover_every_group_with_its_reason() -> None:
    ok, broken, cramped, costly = group("slow"), group("fast"), group("cramped"), group("big")
    outcomes = [
        measured(ok, 2, usd=2),
        measured(ok, 1, usd=1, ttft=2.0, meets=False),
        measured(broken, 1, usd=3, ttft=2.0, meets=False),
    ]
    misfits = [Misfit(cramped, "memory", "weights do not fit")]
    skipped = {costly: "not simulated: one replica costs $9.00/h", broken: "more would cost more"}
    front = pareto_front(outcomes)
    rows = summarize_groups([ok, broken, cramped, costly], outcomes, misfits, skipped, front, SLO)
    assert [(r.group, r.verdict.kind) for r in rows] == [
        (ok, "recommended"),
        (broken, "slo"),
        (cramped, "memory"),
        (costly, "cost"),
    ]
    assert rows[0].best == outcomes[0]
    assert "with 1 replica; more would cost more" in rows[1].verdict.reason
    assert rows[2].verdict.reason == "weights do not fit" and rows[2].best is None
