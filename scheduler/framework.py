"""The routing framework: filters narrow, scorers score, a picker chooses.

A routing decision runs one :class:`Profile`: built-in safety filters (not excluded by a
retry, serves the model, healthy with fresh data), then the profile's own filters, then
each scorer gives every remaining endpoint a score in [0, 1]; scores are clamped, weighted
and summed centrally (divided by the total weight, so the sum stays in [0, 1]), and the
picker chooses. Plugins that learn from decisions (a prefix index) observe the choice.
Everything here is synchronous and reads one immutable snapshot.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scheduler.endpoint import Endpoint, PoolSnapshot
from scheduler.request import RoutingRequest


class NoEndpointAvailable(Exception):
    """No endpoint survived the filters."""

    def __init__(self, model: str, reason: str = "no healthy worker") -> None:
        super().__init__(f"{reason} is serving model {model!r}")
        self.model = model


@dataclass(frozen=True, slots=True)
class RoutingContext:
    request: RoutingRequest
    snapshot: PoolSnapshot
    in_flight: Mapping[str, int]
    now: float
    max_age_s: float
    exclude: Collection[str] = ()
    in_flight_tokens: Mapping[str, int] = field(default_factory=dict)
    """Estimated prompt tokens this gateway has in flight per endpoint."""
    gateway_replicas: int = 1
    """Gateway replicas sharing the pool; above 1 the others' in-flight is estimated."""

    def in_flight_of(self, endpoint: Endpoint) -> float:
        """Requests in flight to ``endpoint`` from every gateway replica, as far as one can tell.

        A replica counts only its own. Behind a balancer each of R replicas sends about an
        R-th of the traffic, so own x R estimates the pool-wide count between probes, and the
        worker's scraped running + waiting is the true count as of the last probe; the larger
        is used. With one replica this is exactly the replica's own count.
        """
        own = self.in_flight.get(endpoint.url, 0)
        if self.gateway_replicas <= 1:
            return own
        stats = endpoint.stats.get(self.request.model)
        scraped = stats.running + stats.waiting if stats is not None else 0.0
        return max(scraped, float(own * self.gateway_replicas))

    def in_flight_tokens_of(self, endpoint: Endpoint) -> float:
        """Prompt tokens in flight to ``endpoint`` from every replica (own x R, as above)."""
        return float(self.in_flight_tokens.get(endpoint.url, 0) * self.gateway_replicas)

    def load(self, endpoint: Endpoint) -> float:
        """Queue depth: the worker's waiting requests for the model plus those in flight."""
        return endpoint.waiting(self.request.model) + self.in_flight_of(endpoint)


class Filter(Protocol):
    def filter(self, ctx: RoutingContext, candidates: Sequence[Endpoint]) -> Sequence[Endpoint]:
        """The candidates that may take the request (a subsequence, order kept)."""
        ...


class Scorer(Protocol):
    def score(self, ctx: RoutingContext, candidates: Sequence[Endpoint]) -> Sequence[float]:
        """One score in [0, 1] per candidate, in the candidates' order; higher is better."""
        ...


class Picker(Protocol):
    def pick(
        self,
        ctx: RoutingContext,
        candidates: Sequence[Endpoint],
        scores: Sequence[float],
        rng: random.Random,
    ) -> int:
        """Index of the chosen candidate."""
        ...


class Observer(Protocol):
    def observe(self, ctx: RoutingContext, chosen: Endpoint) -> None:
        """Learn from a decision (called once the endpoint is chosen)."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    endpoint: Endpoint
    queue_depth: float
    score: float


@dataclass(frozen=True, slots=True)
class WeightedScorer:
    name: str
    scorer: Scorer
    weight: float


@dataclass(frozen=True)
class Profile:
    name: str
    filters: tuple[Filter, ...] = ()
    scorers: tuple[WeightedScorer, ...] = ()
    picker: Picker | None = None
    observers: tuple[Observer, ...] = field(default=())

    def route(self, ctx: RoutingContext, rng: random.Random) -> Decision:
        candidates: Sequence[Endpoint] = eligible(ctx)
        if not candidates:
            raise NoEndpointAvailable(ctx.request.model)
        for step in self.filters:
            candidates = step.filter(ctx, candidates)
            if not candidates:
                raise NoEndpointAvailable(ctx.request.model, "no worker with room")
        totals = combine(ctx, candidates, self.scorers)
        if self.picker is None or len(candidates) == 1:
            index = 0 if len(candidates) == 1 else max(range(len(totals)), key=totals.__getitem__)
        else:
            index = self.picker.pick(ctx, candidates, totals, rng)
        chosen = candidates[index]
        for observer in self.observers:
            observer.observe(ctx, chosen)
        return Decision(endpoint=chosen, queue_depth=ctx.load(chosen), score=totals[index])


def eligible(ctx: RoutingContext) -> list[Endpoint]:
    """Built-in filters every profile runs first: not excluded, serves the model, fresh."""
    model, now, max_age, exclude = ctx.request.model, ctx.now, ctx.max_age_s, ctx.exclude
    return [
        e
        for e in ctx.snapshot.endpoints
        if model in e.models and e.fresh(now, max_age) and e.url not in exclude
    ]


def combine(
    ctx: RoutingContext, candidates: Sequence[Endpoint], scorers: Sequence[WeightedScorer]
) -> list[float]:
    """Clamp each scorer's output to [0, 1], weight it, and normalise by the total weight."""
    totals = [0.0] * len(candidates)
    weight_sum = sum(s.weight for s in scorers)
    if weight_sum <= 0:
        return totals
    for weighted in scorers:
        scores = weighted.scorer.score(ctx, candidates)
        if len(scores) != len(candidates):
            raise ValueError(
                f"scorer {weighted.name!r} returned {len(scores)} scores "
                f"for {len(candidates)} endpoints"
            )
        share = weighted.weight / weight_sum
        for i, value in enumerate(scores):
            totals[i] += share * (0.0 if value < 0.0 else 1.0 if value > 1.0 else value)
    return totals


@dataclass(frozen=True)
class Router:
    """Named profiles; requests use the default unless told otherwise."""

    profiles: Mapping[str, Profile]
    default: str

    def route(
        self, ctx: RoutingContext, rng: random.Random, profile: str | None = None
    ) -> Decision:
        return self.profiles[profile or self.default].route(ctx, rng)
