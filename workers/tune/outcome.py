"""What one simulated deployment achieved, judged against the SLO.

Latency percentiles use the nearest-rank method: the p95 is the value at rank
``ceil(0.95 n)`` of the sorted samples, so it is at most the SLO exactly when no more than
``n - ceil(0.95 n)`` samples exceed it. That makes an early verdict exact: once more
requests than that have missed, the p95 is broken whatever the rest do
(``allowed_misses``).

- TTFT is counted for every request of the trace; a request refused for length never gets
  a first token and counts as a miss.
- ITL is each request's mean time between output tokens after the first (what
  ``vllm bench serve`` reports as TPOT), over the requests with two or more output tokens.
  The engine model jumps over pure-decode steps, so single token gaps are not observed.
- Goodput counts the output tokens of requests that met both targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from workers.sim.engine import RequestRecord
from workers.tune.space import Candidate

QUANTILE = 0.95


@dataclass(frozen=True, slots=True)
class Slo:
    ttft_p95_s: float
    itl_p95_s: float

    def __post_init__(self) -> None:
        if not (self.ttft_p95_s > 0 and self.itl_p95_s > 0):
            raise ValueError("SLO targets must be positive")


def nearest_rank(sorted_values: Sequence[float], quantile: float = QUANTILE) -> float:
    """The ``quantile`` of already sorted values (nearest rank); 0.0 when there are none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(quantile * len(sorted_values)))
    return sorted_values[rank - 1]


def allowed_misses(samples: int, quantile: float = QUANTILE) -> int:
    """How many of ``samples`` may exceed the target while the quantile still meets it."""
    return samples - math.ceil(quantile * samples)


def ttft(record: RequestRecord) -> float:
    return math.inf if record.first_token_at is None else record.first_token_at - record.arrived_at


def itl(record: RequestRecord) -> float | None:
    """Mean seconds between output tokens after the first; None with fewer than two."""
    if record.num_generated < 2 or record.first_token_at is None or record.last_token_at is None:
        return None
    return (record.last_token_at - record.first_token_at) / (record.num_generated - 1)


@dataclass(frozen=True, slots=True)
class Measured:
    """A deployment replayed to the end of the trace."""

    candidate: Candidate
    usd_per_hour: float
    requests: int
    ttft_p95_s: float
    itl_p95_s: float
    requests_in_slo: int
    output_tokens: int
    goodput_tokens: int
    makespan_s: float  # first arrival to last finish: how long the fleet is paid for
    meets_slo: bool

    @property
    def usd(self) -> float:
        return self.usd_per_hour * self.makespan_s / 3600

    @property
    def goodput_per_usd(self) -> float:
        return self.goodput_tokens / self.usd if self.usd > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Breached:
    """A deployment whose replay stopped as soon as the SLO could no longer be met."""

    candidate: Candidate
    usd_per_hour: float
    requests: int
    finished: int  # requests finished when the replay stopped
    broken: Literal["ttft", "itl"]
    misses: int  # requests that had missed the broken target by then
    meets_slo: Literal[False] = False


Outcome = Measured | Breached


def measure(
    candidate: Candidate,
    usd_per_hour: float,
    records: Sequence[RequestRecord],
    num_requests: int,
    first_arrival_s: float,
    slo: Slo,
) -> Measured:
    """Judge a complete replay; requests of the trace without a record were refused."""
    ttfts = sorted(ttft(r) for r in records)
    ttfts.extend([math.inf] * (num_requests - len(records)))
    itls = sorted(x for r in records if (x := itl(r)) is not None)
    good = [
        r
        for r in records
        if ttft(r) <= slo.ttft_p95_s and ((x := itl(r)) is None or x <= slo.itl_p95_s)
    ]
    ttft_p95, itl_p95 = nearest_rank(ttfts), nearest_rank(itls)
    last = max((r.finished_at for r in records), default=first_arrival_s)
    return Measured(
        candidate=candidate,
        usd_per_hour=usd_per_hour,
        requests=num_requests,
        ttft_p95_s=ttft_p95,
        itl_p95_s=itl_p95,
        requests_in_slo=len(good),
        output_tokens=sum(r.num_generated for r in records),
        goodput_tokens=sum(r.num_generated for r in good),
        makespan_s=last - first_arrival_s,
        meets_slo=ttft_p95 <= slo.ttft_p95_s and itl_p95 <= slo.itl_p95_s,
    )
