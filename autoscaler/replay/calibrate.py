"""What one replica can take within the SLO, from the simulator's calibrated profile.

Poisson arrivals with lengths drawn from the trace are replayed on one engine at a given
rate; the capacity is the highest rate at which ``attainment`` of the requests (after a
warm-up) meet both the TTFT and the ITL target, found by bisection. Every policy is sized
from it: Tidegate's capacity per replica (the seed the controller would learn from), the
static fleet, SkyServe's target QPS per replica, and, through Little's law, the KPA's
target concurrency (the mean requests in flight at that rate).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.policy.observation import Slo
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import Profile
from workers.sim.replay import ReplayRequest, simulate


@dataclass(frozen=True, slots=True)
class Capacity:
    rps: float
    """Highest arrival rate one replica serves within the SLO."""
    concurrency: float
    """Mean requests in flight (running + waiting) at that rate."""


def attainment_at(
    rate: float,
    profile: Profile,
    config: EngineConfig,
    lengths: Sequence[tuple[int, int]],
    slo: Slo,
    *,
    seconds: float = 240.0,
    warmup_s: float = 40.0,
    seed: int = 0,
) -> tuple[float, float]:
    """(share of requests within both targets, mean in-flight) at ``rate`` on one engine."""
    rng = random.Random(f"calibrate:{seed}")
    requests: list[ReplayRequest] = []
    t = rng.expovariate(rate)
    while t < seconds:
        prompt, output = lengths[rng.randrange(len(lengths))]
        requests.append(ReplayRequest(f"c{len(requests)}", t, prompt, output))
        t += rng.expovariate(rate)
    report = simulate(requests, profile, config)
    kept = [r for r in report.records if r.arrived_at >= warmup_s]
    if not kept:
        return 0.0, 0.0
    met = 0
    busy = 0.0
    for r in kept:
        assert r.first_token_at is not None and r.last_token_at is not None
        itl = (r.last_token_at - r.first_token_at) / max(1, r.num_generated - 1)
        met += r.first_token_at - r.arrived_at <= slo.ttft_p95_s and itl <= slo.itl_p95_s
        busy += r.finished_at - r.arrived_at
    span = max(r.arrived_at for r in kept) - warmup_s
    return met / len(kept), busy / span if span > 0 else 0.0


def capacity_at_slo(
    profile: Profile,
    config: EngineConfig,
    lengths: Sequence[tuple[int, int]],
    slo: Slo,
    *,
    attainment: float = 0.99,
    low: float = 0.5,
    high: float = 64.0,
    resolution: float = 0.25,
    seed: int = 0,
) -> Capacity:
    best = Capacity(low, 0.0)
    while high - low > resolution:
        mid = (low + high) / 2
        share, concurrency = attainment_at(mid, profile, config, lengths, slo, seed=seed)
        if share >= attainment:
            low, best = mid, Capacity(mid, concurrency)
        else:
            high = mid
    return best
