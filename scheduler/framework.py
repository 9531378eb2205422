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

SLOW_START_FLOOR = 0.1
"""The least warmth a worker in slow start has (Envoy's ``min_weight_percent`` default)."""


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
    slow_start_s: float = 0.0
    """A worker healthy for less than this looks more loaded than it is (0: off)."""
    _slow_start: bool = field(init=False, default=False)
    """Whether slow start applies: on, and some worker of the model is past its window.
    Workers that all became healthy together (a gateway starting, a new model) are left
    alike: their warmths differ only by when each was first probed, which min-max
    scoring would blow up into a full preference."""

    def __post_init__(self) -> None:
        window, model, now = self.slow_start_s, self.request.model, self.now
        warm = window > 0 and any(
            e.healthy_since is not None and now - e.healthy_since >= window and model in e.models
            for e in self.snapshot.endpoints
        )
        object.__setattr__(self, "_slow_start", warm)

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

    def depth(self, endpoint: Endpoint) -> float:
        """The worker's waiting requests for the model plus those in flight."""
        return endpoint.waiting(self.request.model) + self.in_flight_of(endpoint)

    def load(self, endpoint: Endpoint) -> float:
        """Queue depth as load-based routing weighs it: :meth:`depth`, or
        ``(depth + 1) / warmth - 1`` for a worker still in slow start."""
        depth = self.depth(endpoint)
        warmth = self.warmth(endpoint)
        return depth if warmth >= 1.0 else (depth + 1.0) / warmth - 1.0

    def warmth(self, endpoint: Endpoint) -> float:
        """The share of a full worker's load a newly healthy one is given: rising linearly
        from ``SLOW_START_FLOOR`` to 1 over ``slow_start_s``, once some worker is warm.

        Without it, a worker that joins a busy pool has an empty queue and takes every
        request until its depth matches the others': in the what-if replay, some 60
        prompts within a second, whose prefills queue behind each other, and a quarter
        of them missed the SLO (docs/routing.md, Slow start)."""
        since = endpoint.healthy_since
        if not self._slow_start or since is None:
            return 1.0
        return min(1.0, max(SLOW_START_FLOOR, (self.now - since) / self.slow_start_s))


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
        return Decision(endpoint=chosen, queue_depth=ctx.depth(chosen), score=totals[index])


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
