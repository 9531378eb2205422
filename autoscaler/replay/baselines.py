"""Peer routing policies, re-implemented from their published descriptions, for side-by-side
replay against Tidegate's profiles. Each has the framework's ``route(ctx, rng)`` shape.

- ``RoundRobin``: the classic.
- Gateway API Inference Extension's default profile is expressible in Tidegate's own
  framework (see :func:`gie_default_profile`): queue scorer (weight 2, worker-reported
  waiting queue only), KV-cache scorer (2), prefix-cache scorer (3), max-score picker.
- ``CacheAware``: SGLang router's cache-aware policy. While load is balanced, the worker
  whose approximate prefix tree matches the most of the prompt takes it if the match ratio
  exceeds ``cache_threshold``, else the worker with the smallest tree; when load is
  imbalanced (max - min > ``balance_abs`` and max > ``balance_rel`` x min) the least loaded
  worker takes it. Load is the router's own count of requests in flight per worker.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from scheduler.config import (
    KvCacheScorerSpec,
    MaxScorePickerSpec,
    PrefixIndexScorerSpec,
    ProfileSpec,
    QueueDepthScorerSpec,
    SchedulerSettings,
    ScorerRef,
)
from scheduler.framework import Decision, NoEndpointAvailable, RoutingContext, eligible
from scheduler.plugins.affinity import PrefixIndexScorer


@dataclass
class RoundRobin:
    _next: int = 0

    def route(self, ctx: RoutingContext, rng: random.Random) -> Decision:
        candidates = eligible(ctx)
        if not candidates:
            raise NoEndpointAvailable(ctx.request.model)
        chosen = candidates[self._next % len(candidates)]
        self._next += 1
        return Decision(chosen, ctx.load(chosen), 1.0)


def gie_default_profile() -> SchedulerSettings:
    return SchedulerSettings(
        plugins={
            "queue": QueueDepthScorerSpec(type="queue-depth-scorer", include_in_flight=False),
            "kv": KvCacheScorerSpec(type="kv-cache-scorer"),
            "prefix": PrefixIndexScorerSpec(type="prefix-index-scorer"),
            "max": MaxScorePickerSpec(type="max-score-picker"),
        },
        profiles={
            "gie-default": ProfileSpec(
                scorers=(
                    ScorerRef(plugin="queue", weight=2),
                    ScorerRef(plugin="kv", weight=2),
                    ScorerRef(plugin="prefix", weight=3),
                ),
                picker="max",
            )
        },
        default_profile="gie-default",
    )


@dataclass
class CacheAware:
    cache_threshold: float = 0.5
    balance_abs: float = 64
    balance_rel: float = 1.5
    tree_capacity_blocks: int = 1_000_000
    _trees: PrefixIndexScorer = field(init=False)

    def __post_init__(self) -> None:
        self._trees = PrefixIndexScorer(capacity=self.tree_capacity_blocks)

    def route(self, ctx: RoutingContext, rng: random.Random) -> Decision:
        candidates = eligible(ctx)
        if not candidates:
            raise NoEndpointAvailable(ctx.request.model)
        loads = [float(ctx.in_flight.get(e.url, 0)) for e in candidates]
        low, high = min(loads), max(loads)
        if high - low > self.balance_abs and high > self.balance_rel * low:
            chosen = candidates[loads.index(low)]
        else:
            matches = self._trees.score(ctx, candidates)
            best = max(matches)
            if best > self.cache_threshold:
                chosen = candidates[matches.index(best)]
            else:
                sizes = [self._trees.blocks_held(e.url) for e in candidates]
                chosen = candidates[sizes.index(min(sizes))]
        self._trees.observe(ctx, chosen)
        return Decision(chosen, ctx.load(chosen), 1.0)
