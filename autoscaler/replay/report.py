"""What a what-if run comes to: SLO attainment, cost, goodput per dollar, replica-hours per
pool, scaling actions; as one JSON line or a table row.

SLO attainment is the share of all requests (lost and abandoned ones count as misses) whose
TTFT, from their first arrival at the gateway (retries included), and mean inter-token
latency are both within target. Cost is node-hours times price, from node launch
(provisioning included) to its end, up to the end of the scenario. Goodput is the output
tokens of the requests within SLO, per dollar. A warm-up before the measured window counts
for nothing: its requests, node-hours, actions and samples are left out, and times are
reported from the end of the warm-up.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from autoscaler.policy.observation import Slo
from autoscaler.replay.cluster import ClusterModel
from autoscaler.replay.whatif import Outcome, Sample, WhatIfRun


@dataclass(frozen=True)
class ReplayResult:
    policy: str
    pools: dict[str, str]
    """Pool name -> capacity type."""
    requests: int
    served: int
    lost: int
    """Running when their node went (preemption)."""
    abandoned: int
    """No first token within the client's patience."""
    retried: int
    rejected: int
    slo_attainment: float
    ttft_attainment: float
    itl_attainment: float
    ttft_p50_s: float
    ttft_p95_s: float
    ttft_p99_s: float
    itl_p95_s: float
    cost: float
    cost_by_pool: dict[str, float]
    replica_hours: dict[str, float]
    scaling_actions: int
    scaling_actions_by_pool: dict[str, int]
    preemptions: int
    mass_preemptions: int
    goodput_tokens_per_dollar: float
    scenario_hours: float
    time_scale: float
    capacity_rps: float
    cpu_s: float = 0.0
    warmup_hours: float = 0.0
    """Replayed before the measured window and left out of every figure."""
    outcomes: list[Outcome] = field(default_factory=list, repr=False, compare=False)
    samples: list[Sample] = field(default_factory=list, repr=False, compare=False)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        del data["outcomes"], data["samples"]
        return json.dumps({k: _round(v) for k, v in data.items()})


def summarize(
    policy: str,
    run: WhatIfRun,
    cluster: ClusterModel,
    slo: Slo,
    *,
    horizon_s: float,
    time_scale: float,
    capacity_rps: float,
    cpu_s: float = 0.0,
    warmup_s: float = 0.0,
) -> ReplayResult:
    """``horizon_s`` and ``warmup_s`` are scenario seconds from the start of the replay."""
    offset = warmup_s / time_scale
    outcomes = [
        dataclasses.replace(o, arrival_s=o.arrival_s - offset)
        for o in run.outcomes
        if o.arrival_s >= offset
    ]
    samples = [dataclasses.replace(s, at=s.at - warmup_s) for s in run.samples if s.at >= warmup_s]
    served = [o for o in outcomes if o.fate == "served"]
    ttft_ok = [o.ttft_s <= slo.ttft_p95_s for o in outcomes]
    itl_ok = [o.itl_s <= slo.itl_p95_s for o in outcomes]
    total = max(1, len(outcomes))
    met = [a and b for a, b in zip(ttft_ok, itl_ok, strict=True)]
    good_tokens = sum(o.generated for o, ok in zip(outcomes, met, strict=True) if ok)
    cost_by_pool = cluster.cost(horizon_s, since=warmup_s)
    cost = sum(cost_by_pool.values())
    ttfts = sorted(o.ttft_s for o in served)
    itls = sorted(o.itl_s for o in served)
    return ReplayResult(
        policy=policy,
        pools={name: spec.capacity_type for name, spec in cluster.specs.items()},
        requests=len(outcomes),
        served=len(served),
        lost=sum(o.fate == "lost" for o in outcomes),
        abandoned=sum(o.fate == "abandoned" for o in outcomes),
        retried=run.retried,
        rejected=run.rejected,
        slo_attainment=sum(met) / total,
        ttft_attainment=sum(ttft_ok) / total,
        itl_attainment=sum(itl_ok) / total,
        ttft_p50_s=quantile(ttfts, 0.50),
        ttft_p95_s=quantile(ttfts, 0.95),
        ttft_p99_s=quantile(ttfts, 0.99),
        itl_p95_s=quantile(itls, 0.95),
        cost=cost,
        cost_by_pool=cost_by_pool,
        replica_hours={
            p: s / 3600.0 for p, s in cluster.replica_seconds(horizon_s, warmup_s).items()
        },
        scaling_actions=sum(cluster.actions.values()),
        scaling_actions_by_pool=dict(cluster.actions),
        preemptions=cluster.preemptions,
        mass_preemptions=cluster.mass_preemptions,
        goodput_tokens_per_dollar=good_tokens / cost if cost > 0 else 0.0,
        scenario_hours=(horizon_s - warmup_s) / 3600.0,
        time_scale=time_scale,
        capacity_rps=capacity_rps,
        cpu_s=cpu_s,
        warmup_hours=warmup_s / 3600.0,
        outcomes=outcomes,
        samples=samples,
    )


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted ``values`` (0 when empty)."""
    if not values:
        return 0.0
    return values[max(0, math.ceil(q * len(values)) - 1)]


def table(results: Sequence[ReplayResult]) -> str:
    header = (
        "policy",
        "SLO att.",
        "TTFT att.",
        "TTFT p99",
        "cost $",
        "vs static",
        "spot h",
        "on-dem. h",
        "tok/$",
        "actions",
        "lost",
        "abandoned",
        "retried",
    )
    static = next((r.cost for r in results if r.policy == "static"), None)
    rows = [header]
    for r in results:
        spot_h = sum(h for p, h in r.replica_hours.items() if r.pools[p] == "spot")
        rows.append(
            (
                r.policy,
                f"{r.slo_attainment:.2%}",
                f"{r.ttft_attainment:.2%}",
                f"{r.ttft_p99_s:.2f}s",
                f"{r.cost:,.0f}",
                f"{r.cost / static:.0%}" if static else "-",
                f"{spot_h:.0f}",
                f"{sum(r.replica_hours.values()) - spot_h:.0f}",
                f"{r.goodput_tokens_per_dollar:,.0f}",
                str(r.scaling_actions),
                str(r.lost),
                str(r.abandoned),
                str(r.retried),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _round(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value
