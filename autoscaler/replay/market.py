"""The spot market a replay runs against, drawn once from a seed so every policy meets the
same mass preemptions and the same hours without spot capacity.

Per pool: mass preemptions as a Poisson process (``mass_preemptions_per_day``) plus any
given times; windows without capacity as a Poisson process of starts with exponential
lengths (``unavailable_per_day``, ``unavailable_mean_s``), plus ``unavailable_after_mass_s``
after each mass preemption (the capacity went to someone else), plus any given windows.
Individual preemptions are drawn per replica by the cluster (they depend on how many
replicas a policy runs).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from autoscaler.replay.pools import PoolSpec

DAY_S = 86_400.0


@dataclass(frozen=True)
class SpotMarket:
    mass_preemptions: tuple[tuple[float, str], ...] = ()
    """(time, pool), in time order."""
    unavailable: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    """Per pool, merged (start, end) windows in time order."""

    def available(self, pool: str, at: float) -> bool:
        windows = self.unavailable.get(pool, ())
        index = bisect.bisect_right(windows, (at, float("inf"))) - 1
        return index < 0 or not windows[index][0] <= at < windows[index][1]

    def returns_at(self, pool: str, at: float) -> float:
        """When capacity comes back if it is missing at ``at`` (``at`` if it is there)."""
        for start, end in self.unavailable.get(pool, ()):
            if start <= at < end:
                return end
        return at

    def shifted(self, offset_s: float) -> SpotMarket:
        """The same market ``offset_s`` later (a replay that starts with a warm-up)."""
        return SpotMarket(
            tuple((t + offset_s, pool) for t, pool in self.mass_preemptions),
            {
                pool: tuple((a + offset_s, b + offset_s) for a, b in windows)
                for pool, windows in self.unavailable.items()
            },
        )

    def window_ends(self) -> list[tuple[float, str]]:
        return sorted((end, pool) for pool, ws in self.unavailable.items() for _, end in ws)


def draw_market(pools: Sequence[PoolSpec], horizon_s: float, seed: int = 0) -> SpotMarket:
    mass: list[tuple[float, str]] = []
    unavailable: dict[str, tuple[tuple[float, float], ...]] = {}
    for pool in pools:
        if pool.capacity_type != "spot":
            continue
        rng = random.Random(f"market:{seed}:{pool.name}")
        drawn = _poisson(rng, pool.mass_preemptions_per_day / DAY_S, horizon_s)
        times = sorted([*drawn, *pool.mass_preemptions_at])
        windows = list(pool.unavailable_windows)
        windows += [(t, t + pool.unavailable_after_mass_s) for t in times]
        for start in _poisson(rng, pool.unavailable_per_day / DAY_S, horizon_s):
            windows.append((start, start + rng.expovariate(1.0 / pool.unavailable_mean_s)))
        mass += [(t, pool.name) for t in times]
        unavailable[pool.name] = _merge(windows)
    return SpotMarket(tuple(sorted(mass)), unavailable)


def _poisson(rng: random.Random, rate_per_s: float, horizon_s: float) -> list[float]:
    times: list[float] = []
    if rate_per_s <= 0:
        return times
    t = rng.expovariate(rate_per_s)
    while t < horizon_s:
        times.append(t)
        t += rng.expovariate(rate_per_s)
    return times


def _merge(windows: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(w for w in windows if w[1] > w[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)
