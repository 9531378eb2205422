"""The routing decision (first cut): least queue depth among fresh, healthy endpoints.

Queue depth is what the worker last reported waiting for the model plus what this gateway
has in flight to it right now; the in-flight half reacts at once, the scraped half catches
load from other gateway replicas.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from scheduler.endpoint import Endpoint, PoolSnapshot


class NoEndpointAvailable(Exception):
    """No healthy, fresh endpoint serves the model (besides those excluded)."""

    def __init__(self, model: str) -> None:
        super().__init__(f"no healthy worker is serving model {model!r}")
        self.model = model


@dataclass(frozen=True, slots=True)
class Decision:
    endpoint: Endpoint
    queue_depth: float


def queue_depth(endpoint: Endpoint, model: str, in_flight: Mapping[str, int]) -> float:
    return endpoint.waiting(model) + in_flight.get(endpoint.url, 0)


def choose_least_queue(
    snapshot: PoolSnapshot,
    in_flight: Mapping[str, int],
    model: str,
    *,
    now: float,
    max_age_s: float,
    rng: random.Random,
    exclude: Collection[str] = (),
) -> Decision:
    """Pick the endpoint serving ``model`` with the smallest queue depth, ties at random."""
    best: list[Endpoint] = []
    best_depth = float("inf")
    for endpoint in snapshot.endpoints:
        if (
            endpoint.url in exclude
            or not endpoint.serves(model)
            or not endpoint.fresh(now, max_age_s)
        ):
            continue
        depth = queue_depth(endpoint, model, in_flight)
        if depth < best_depth:
            best, best_depth = [endpoint], depth
        elif depth == best_depth:
            best.append(endpoint)
    if not best:
        raise NoEndpointAvailable(model)
    chosen = best[0] if len(best) == 1 else rng.choice(best)
    return Decision(endpoint=chosen, queue_depth=best_depth)
