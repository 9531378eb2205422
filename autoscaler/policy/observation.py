"""What the pipeline and capacity learning see of a model at one moment, the SLO they hold it
to, and the error-budget arithmetic both judge a window by."""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoscaler.signals.histogram import share_above


@dataclass(frozen=True, slots=True)
class Observation:
    """Signals for one model at one moment (``None`` where a signal is missing)."""

    at: float
    ready_replicas: int
    arrival_rps: float | None = None
    ttft_p95_s: float | None = None
    itl_p95_s: float | None = None
    queued: float | None = None
    """Requests waiting: held by gateways plus vLLM's waiting queues."""
    fresh: bool = True
    miss_share: float | None = None
    """Share of recent requests that missed the TTFT or the ITL target, where the source
    knows it (the what-if replay does)."""
    ttft_buckets: tuple[tuple[float, float], ...] = ()
    """The window's requests by TTFT, as cumulative (upper bound, count) histogram buckets
    ending with ``inf``; empty where unknown. With ``itl_buckets`` (requests by their mean
    inter-token latency) it gives the miss share against any target."""
    itl_buckets: tuple[tuple[float, float], ...] = ()
    window_requests: float | None = None
    """Requests the miss share is over, where the source knows it (the what-if replay);
    else the TTFT histogram's count."""


@dataclass(frozen=True, slots=True)
class Slo:
    ttft_p95_s: float
    itl_p95_s: float
    objective: float | None = None
    """Share of requests that must meet both targets (say 0.99). Where an observation has
    a miss share, capacity learning judges the SLO by it rather than by the p95s."""


def miss_share(obs: Observation, slo: Slo) -> float | None:
    """The share of the window's requests over the TTFT or the ITL target: as the source
    gave it, else from the window's histograms, added up as the what-if does (a request
    over both counts twice, which errs towards more capacity); None where neither
    histogram has an observation."""
    if obs.miss_share is not None:
        return obs.miss_share
    ttft = share_above(slo.ttft_p95_s, dict(obs.ttft_buckets)) if obs.ttft_buckets else None
    itl = share_above(slo.itl_p95_s, dict(obs.itl_buckets)) if obs.itl_buckets else None
    if ttft is None and itl is None:
        return None
    return min(1.0, (ttft or 0.0) + (itl or 0.0))


def requests_in_window(obs: Observation) -> float | None:
    """How many requests the window's miss share is over (None: unknown)."""
    if obs.window_requests is not None:
        return obs.window_requests
    return dict(obs.ttft_buckets).get(math.inf) if obs.ttft_buckets else None


def allowed_misses(obs: Observation, objective: float, z: float) -> float:
    """The share of the window's requests that may miss before the window counts as over
    the error budget: the budget plus ``z`` binomial standard deviations where the window's
    request count is known, the budget alone where not."""
    budget = 1 - objective
    n = requests_in_window(obs)
    return budget + z * math.sqrt(budget * (1 - budget) / n) if n else budget
