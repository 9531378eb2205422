"""Splitting a model's replicas between spot and on-demand pools.

Pure: given the replicas the pipeline asked for and each pool's state, say how many each
pool should run and why. Rules, in order:
1. Paused pools keep what they have, other pools get their minimum; both count towards
   the total.
2. The on-demand floor goes to on-demand pools, cheapest first.
3. The rest goes to spot pools, cheapest first, up to their max, plus spare replicas: the
   spot share of demand, padded by the over-provision share and rounded up once, less
   the replicas planned there (see ``_spare``). A spot pool whose replicas have been pending
   longer than ``fallback_after_s`` is treated as out of capacity: it keeps what is ready
   and the shortfall goes to on-demand pools (cheapest first).
4. On-demand replicas above the floor are given back only once spot replicas are ready to
   take their place (return to spot without a gap).

Preemption, as observed (:mod:`autoscaler.controller.disruption` counts it):
- replicas a pool is losing now (``lost``: a termination notice, a disruption) are
  replaced at once: the pool is asked for that many more while the doomed ones finish,
  and they do not count as ready;
- a spot pool that lost replicas within ``fallback_after_s`` and has replicas pending is
  short now: it falls back to on-demand at once rather than after ``fallback_after_s``,
  and its losses are replaced on on-demand;
- where the share of spot replicas expected to be lost while one is replaced,
  ``preemptions per replica-hour x replacement_s``, is higher than the over-provision
  share, that share of the spot replicas planned is added instead of the padding, if more.
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
    lost: int = 0
    """Ready replicas going away now (termination notice, disruption): not capacity."""
    preemptions: tuple[float, ...] = ()
    """When each replica of this pool was lost within the caller's window."""

    @property
    def usable(self) -> int:
        return max(0, self.ready - self.lost)


@dataclass(frozen=True, slots=True)
class SpotSettings:
    on_demand_floor: int = 1
    over_provision: float = 0.3
    """Padding over the spot share of demand: spot replicas are planned for demand x
    (1 + this), where the caller says what demand is (else as a share of the spot
    replicas planned)."""
    spare_window_s: float = 120.0
    """Demand, for the padding, is the lowest arrival rate of this window: a spare is asked
    for once demand has held for it, and let go as soon as demand falls."""
    fallback_after_s: float = 120.0
    preemption_window_s: float = 3600.0
    """Preemptions this far back count towards the observed rate."""
    replacement_s: float = 600.0
    """How long a lost spot replica takes to replace (node, image, weights)."""


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    replicas: dict[str, int]
    reasons: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(self.replicas.values())


def plan_capacity(
    wanted: int,
    pools: Sequence[PoolState],
    spot: SpotSettings,
    now: float,
    demand: float | None = None,
) -> CapacityPlan:
    """``demand``: the arrival rate in replicas' worth (rate / capacity per replica, not
    rounded; :func:`sustained_demand`), None where unknown."""
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
    off_spot = wanted - remaining  # minimums, paused pools and the on-demand floor
    spare = _spare(remaining, None if demand is None else demand - off_spot, spot, reasons)
    expected = _preemption_share(spots, spot, now, reasons)
    spot_target = remaining + max(spare, math.ceil(remaining * expected - 1e-9))
    placed_on_spot = 0
    for pool in spots:
        starved = _starved(pool, spot, now)
        if starved:
            reasons.append(f"{pool.name}: {starved}, held at its {pool.ready} ready")
        if placed_on_spot < spot_target:
            room = (pool.ready if starved else pool.max_replicas) - plan[pool.name]
            take = max(0, min(room, spot_target - placed_on_spot))
            plan[pool.name] += take
            # Held at its ready count, the replicas being lost there are no capacity: the
            # shortfall (on-demand) replaces them.
            placed_on_spot += take - min(take, pool.lost) if starved else take
            if take:
                reasons.append(f"{pool.name}: {take} on spot (${pool.price_per_hour:g}/h)")
        if pool.lost and not starved:
            plan[pool.name] += pool.lost
            reasons.append(f"{pool.name}: +{pool.lost} replacing replicas being lost")
    shortfall = max(0, remaining - placed_on_spot)
    if shortfall:
        _fill(plan, on_demand, shortfall, reasons, "spot short, on-demand fallback")
    spot_ready = sum(min(p.usable, plan[p.name]) for p in spots)
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


def _starved(pool: PoolState, spot: SpotSettings, now: float) -> str | None:
    """Why a spot pool is out of capacity now (None: it is not)."""
    if pool.pending_since is None:
        return None
    if now - pool.pending_since > spot.fallback_after_s:
        return f"spot pending over {spot.fallback_after_s:g}s"
    recent = [t for t in pool.preemptions if now - t <= spot.fallback_after_s]
    if recent:
        return f"spot pending after {len(recent)} lost in {spot.fallback_after_s:g}s"
    return None


def sustained_demand(
    arrivals: Sequence[tuple[float, float]], at: float, window_s: float, capacity_rps: float
) -> float | None:
    """The lowest arrival rate of the last ``window_s`` before ``at``, in replicas' worth;
    None until ``arrivals`` (oldest first) reach back that far, or without capacity: a
    controller that has just started cannot say the rate has held."""
    if not arrivals or arrivals[0][0] > at - window_s or capacity_rps <= 0:
        return None
    rates = [r for t, r in arrivals if 0 <= at - t <= window_s]
    return min(rates) / capacity_rps if rates else None


def _spare(planned: int, spot_demand: float | None, spot: SpotSettings, reasons: list[str]) -> int:
    """Spot replicas on top of the ``planned`` ones. Padding demand, not the rounded-up count,
    rounds up once: at 2.1 replicas' worth on spot, 3 planned already hold 43% more, and 20%
    of 3 rounded up again made 4, a third of the night fleet. Where ``planned`` is above the
    padded demand (the latency step, a scale-down window holding replicas), no spare."""
    if not planned:
        return 0
    if spot_demand is None:
        return math.ceil(planned * spot.over_provision - 1e-9)
    padded = math.ceil(max(0.0, spot_demand) * (1 + spot.over_provision) - 1e-9)
    spare = max(0, padded - planned)
    if spare:
        reasons.append(
            f"+{spare} spare on spot: {spot_demand:.2f} replicas' worth of demand "
            f"+ {spot.over_provision:.0%}"
        )
    return spare


def _preemption_share(
    spots: Sequence[PoolState], spot: SpotSettings, now: float, reasons: list[str]
) -> float:
    """The share of spot replicas expected to be lost while one is replaced, where the
    observed preemption rate puts it above the over-provision share (0 otherwise)."""
    window = spot.preemption_window_s
    lost = sum(1 for p in spots for t in p.preemptions if now - t <= window)
    replicas = max(1, sum(max(p.desired, p.ready) for p in spots))
    if not lost or window <= 0:
        return 0.0
    per_replica_hour = lost / replicas / (window / 3600.0)
    expected = min(1.0, per_replica_hour * spot.replacement_s / 3600.0)
    if expected <= spot.over_provision:
        return 0.0
    reasons.append(
        f"spot over-provision {expected:.0%}: {lost} lost in {window / 60:g} min "
        f"({per_replica_hour:.2f} per replica-hour, {spot.replacement_s:g}s to replace)"
    )
    return expected


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
