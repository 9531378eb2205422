"""Nearest-rank percentiles, the early-stop budget and goodput, on hand-made records."""

from __future__ import annotations

import math

import pytest

from tests.tune.support import SLO, group
from workers.sim.engine import RequestRecord
from workers.tune.outcome import Slo, allowed_misses, itl, measure, nearest_rank, ttft
from workers.tune.space import Candidate


def record(
    rid: str, arrived: float, first: float | None, last: float | None, tokens: int
) -> RequestRecord:
    return RequestRecord(
        request_id=rid,
        prompt_tokens=100,
        num_generated=tokens,
        finish_reason="stop",
        arrived_at=arrived,
        scheduled_at=arrived,
        first_token_at=first,
        last_token_at=last,
        finished_at=last if last is not None else arrived,
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], 0.0),
        ([3.0], 3.0),
        ([1.0, 2.0], 2.0),
        ([float(i) for i in range(1, 21)], 19.0),
        ([float(i) for i in range(1, 101)], 95.0),
        ([float(i) for i in range(1, 102)], 96.0),
    ],
)
def test_nearest_rank_p95(values: list[float], expected: float) -> None:
    assert nearest_rank(values) == expected


@pytest.mark.parametrize(
    ("samples", "allowed"), [(0, 0), (1, 0), (19, 0), (20, 1), (100, 5), (101, 5)]
)
def test_allowed_misses_is_exactly_when_the_p95_still_meets_the_target(
    samples: int, allowed: int
) -> None:
    assert allowed_misses(samples) == allowed
    for misses in (allowed, allowed + 1):
        if misses > samples:
            continue
        values = sorted([0.0] * (samples - misses) + [2.0] * misses)
        assert (nearest_rank(values) <= 1.0) is (misses <= allowed)


def test_ttft_and_itl_of_a_record() -> None:
    r = record("a", 10.0, 10.5, 11.5, 11)
    assert ttft(r) == 0.5 and itl(r) == pytest.approx(0.1)
    assert itl(record("one", 0.0, 0.2, 0.2, 1)) is None
    assert ttft(record("never", 0.0, None, None, 0)) == math.inf


def test_measure_counts_refused_requests_as_ttft_misses_and_goodput_only_in_slo() -> None:
    records = [
        record("fast", 0.0, 0.1, 1.1, 51),  # itl 0.02: good
        record("slow-itl", 1.0, 1.2, 6.2, 51),  # itl 0.1: misses ITL
        record("late", 2.0, 4.0, 4.5, 26),  # ttft 2.0: misses TTFT
        record("single", 3.0, 3.1, 3.1, 1),  # no ITL: good
    ]
    m = measure(Candidate(group(), 1), 2.0, records, 5, 0.0, SLO)  # one more was refused
    assert m.requests == 5 and m.requests_in_slo == 2
    assert m.goodput_tokens == 52 and m.output_tokens == 129
    assert m.ttft_p95_s == math.inf and not m.meets_slo  # 2 of 5 missed TTFT
    assert m.itl_p95_s == pytest.approx(0.1)
    assert m.makespan_s == 6.2 and m.usd == pytest.approx(2.0 * 6.2 / 3600)
    assert m.goodput_per_usd == pytest.approx(52 / m.usd)


def test_slo_targets_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Slo(0.0, 0.1)
