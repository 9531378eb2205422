"""Load-based plugins: a bounded-load filter and queue, in-flight and KV-cache scorers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.endpoint import Endpoint
from scheduler.framework import RoutingContext


def _lower_is_better(values: Sequence[float]) -> list[float]:
    """Min-max scale so the least loaded scores 1 and the most loaded 0 (all 1 if equal)."""
    low, high = min(values), max(values)
    if high <= low:
        return [1.0] * len(values)
    span = high - low
    return [(high - v) / span for v in values]


@dataclass(frozen=True, slots=True)
class LoadCeilingFilter:
    """Bounded load: drop endpoints loaded beyond ``factor`` x the candidates' mean (+ slack).

    This is what keeps affinity from piling a burst onto one hot worker: whatever the
    scorers prefer, an endpoint over the ceiling is not a candidate. The least loaded
    endpoint is never over it, so the filter never empties the set.
    """

    factor: float = 1.25
    slack: float = 1.0

    def filter(self, ctx: RoutingContext, candidates: Sequence[Endpoint]) -> Sequence[Endpoint]:
        loads = [ctx.load(e) for e in candidates]
        ceiling = self.factor * (sum(loads) / len(loads)) + self.slack
        return [e for e, load in zip(candidates, loads, strict=True) if load <= ceiling]


@dataclass(frozen=True, slots=True)
class QueueDepthScorer:
    """Prefers fewer waiting + in-flight requests (the worker's queue plus ours).

    With ``include_in_flight=False`` it reads only the worker-reported waiting queue, as
    scrape-only routers do (between scrapes every decision then sees the same numbers).
    """

    include_in_flight: bool = True

    def score(self, ctx: RoutingContext, candidates: Sequence[Endpoint]) -> Sequence[float]:
        if self.include_in_flight:
            return _lower_is_better([ctx.load(e) for e in candidates])
        return _lower_is_better([e.waiting(ctx.request.model) for e in candidates])


@dataclass(frozen=True, slots=True)
class InFlightScorer:
    """Prefers fewer requests in flight (this gateway's own count, reacts before any scrape;
    with several gateway replicas, the pool-wide estimate of ``RoutingContext.in_flight_of``)."""

    def score(self, ctx: RoutingContext, candidates: Sequence[Endpoint]) -> Sequence[float]:
        return _lower_is_better([float(ctx.in_flight_of(e)) for e in candidates])


@dataclass(frozen=True, slots=True)
class KvCacheScorer:
    """Prefers free KV cache: 1 - the worker's reported KV-cache use for the model."""

    def score(self, ctx: RoutingContext, candidates: Sequence[Endpoint]) -> Sequence[float]:
        model = ctx.request.model
        scores = []
        for endpoint in candidates:
            stats = endpoint.stats.get(model)
            scores.append(1.0 - stats.kv_cache_usage if stats is not None else 1.0)
        return scores
