"""Pickers: turn combined scores into one choice."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.endpoint import Endpoint
from scheduler.framework import RoutingContext

_TIE = 1e-9


@dataclass(frozen=True, slots=True)
class MaxScorePicker:
    """The highest score; ties broken at random."""

    def pick(
        self,
        ctx: RoutingContext,
        candidates: Sequence[Endpoint],
        scores: Sequence[float],
        rng: random.Random,
    ) -> int:
        best = max(scores)
        top = [i for i, s in enumerate(scores) if s >= best - _TIE]
        return top[0] if len(top) == 1 else rng.choice(top)


@dataclass(frozen=True, slots=True)
class WeightedRandomPicker:
    """At random, with probability proportional to score (uniform if all score 0)."""

    def pick(
        self,
        ctx: RoutingContext,
        candidates: Sequence[Endpoint],
        scores: Sequence[float],
        rng: random.Random,
    ) -> int:
        if sum(scores) <= 0:
            return rng.randrange(len(candidates))
        return rng.choices(range(len(candidates)), weights=scores)[0]


@dataclass(frozen=True, slots=True)
class PowerOfTwoPicker:
    """Two candidates at random; the better-scoring one (ties at random)."""

    def pick(
        self,
        ctx: RoutingContext,
        candidates: Sequence[Endpoint],
        scores: Sequence[float],
        rng: random.Random,
    ) -> int:
        a, b = rng.sample(range(len(candidates)), 2)
        if abs(scores[a] - scores[b]) <= _TIE:
            return a if rng.random() < 0.5 else b
        return a if scores[a] > scores[b] else b
