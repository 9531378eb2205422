"""Splitting a model's replicas between spot and on-demand pools.

Pure: given the replicas the pipeline asked for and each pool's state, say how many each
pool should run and why. Rules, in order:
1. Paused pools keep what they have, other pools get their minimum; both count towards
   the total.
2. The on-demand floor goes to on-demand pools, cheapest first.
3. The rest goes to spot pools, cheapest first, up to their max, plus an over-provision
   share that covers expected preemptions. A spot pool whose replicas have been pending
   longer than ``fallback_after_s`` is treated as out of capacity: it keeps what is ready
   and the shortfall goes to on-demand pools (cheapest first).
4. On-demand replicas above the floor are given back only once spot replicas are ready to
   take their place (return to spot without a gap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

CapacityType = Literal["spot", "on-demand"]


@dataclass(frozen=True, slots=True)
class PoolState:
    name: str
    capacity_type: CapacityType
    price_per_hour: float
    min_replicas: int
    max_replicas: int
    desired: int
    """Replicas the pool is asked to run now (its scale target's spec)."""
    ready: int
    pending_since: float | None = None
    """When the oldest replica still pending was asked for; None when none is pending."""
    paused: bool = False


@dataclass(frozen=True, slots=True)
class SpotSettings:
    on_demand_floor: int = 1
    over_provision: float = 0.1
    """Extra spot replicas, as a share of the spot replicas planned."""
    fallback_after_s: float = 120.0


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    replicas: dict[str, int]
    reasons: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(self.replicas.values())


def plan_capacity(
    wanted: int, pools: Sequence[PoolState], spot: SpotSettings, now: float
) -> CapacityPlan:
    plan = {p.name: 0 for p in pools}
    reasons: list[str] = []
    active = [p for p in pools if not p.paused]
    for pool in pools:
        if pool.paused:
            plan[pool.name] = pool.desired
            reasons.append(f"{pool.name}: paused, left at {pool.desired}")
        elif pool.min_replicas:
            plan[pool.name] = pool.min_replicas
            reasons.append(f"{pool.name}: its minimum of {pool.min_replicas}")
    remaining = max(0, wanted - sum(plan.values()))
    on_demand = sorted(
        (p for p in active if p.capacity_type == "on-demand"), key=lambda p: p.price_per_hour
    )
    spots = sorted((p for p in active if p.capacity_type == "spot"), key=lambda p: p.price_per_hour)

    floor_left = spot.on_demand_floor - sum(plan[p.name] for p in on_demand)
    floor = min(max(0, floor_left), remaining) if spots else remaining
    remaining -= _fill(plan, on_demand, floor, reasons, "on-demand floor")
    spot_target = remaining + (math.ceil(remaining * spot.over_provision) if remaining else 0)
    placed_on_spot = 0
    for pool in spots:
        if placed_on_spot >= spot_target:
            break
        starved = (
            pool.pending_since is not None and now - pool.pending_since > spot.fallback_after_s
        )
        room = (pool.ready if starved else pool.max_replicas) - plan[pool.name]
        take = max(0, min(room, spot_target - placed_on_spot))
        plan[pool.name] += take
        placed_on_spot += take
        if starved:
            reasons.append(
                f"{pool.name}: spot pending over {spot.fallback_after_s:g}s, "
                f"held at its {pool.ready} ready"
            )
        if take:
            reasons.append(f"{pool.name}: {take} on spot (${pool.price_per_hour:g}/h)")
    shortfall = max(0, remaining - placed_on_spot)
    if shortfall:
        _fill(plan, on_demand, shortfall, reasons, "spot short, on-demand fallback")
    spot_ready = sum(min(p.ready, plan[p.name]) for p in spots)
    for pool in on_demand:
        keep = min(pool.desired, max(0, wanted - spot_ready - _others(plan, pool, on_demand)))
        if keep > plan[pool.name]:
            reasons.append(f"{pool.name}: keeps {keep} until spot replicas are ready")
            plan[pool.name] = keep
    for pool in active:
        bounded = min(max(plan[pool.name], pool.min_replicas), pool.max_replicas)
        if bounded != plan[pool.name]:
            reasons.append(f"{pool.name}: kept within [{pool.min_replicas}, {pool.max_replicas}]")
            plan[pool.name] = bounded
    return CapacityPlan(plan, tuple(reasons))


def _fill(
    plan: dict[str, int], pools: Sequence[PoolState], count: int, reasons: list[str], why: str
) -> int:
    placed = 0
    for pool in pools:
        take = max(0, min(pool.max_replicas - plan[pool.name], count - placed))
        if take:
            plan[pool.name] += take
            placed += take
            reasons.append(f"{pool.name}: {take} ({why})")
    return placed


def _others(plan: dict[str, int], pool: PoolState, pools: Sequence[PoolState]) -> int:
    return sum(plan[p.name] for p in pools if p.name != pool.name)
