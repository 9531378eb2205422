"""Two ways to search the space: brute force (the reference) and bisection on replicas
with cost bounds (what ``tidegate tune`` runs by default).

Both take ``evaluate(candidate) -> Outcome`` and know nothing of simulation, so their logic
is tested with made-up outcome tables.

**Bisection with cost bounds.** Groups (engine configuration on a GPU type) are visited
cheapest replica first. The best deployment found so far costs ``C``; a group whose
replica costs ``c`` can only match or beat it with at most ``floor(C / c)`` replicas, its
*cap*. The search simulates the group at its cap first: if that breaks the SLO, the group
is out after one (usually early-stopped) replay; if one replica already costs more than
``C`` it is not simulated at all. Otherwise it bisects between 0 and the cap for the fewest
replicas that meet the SLO, and that deployment becomes the best if it is cheaper.

This finds the same recommendation as brute force when meeting the SLO is monotone in
replicas (more replicas of the same engines never hurt p95 TTFT or ITL), which holds for
a least-loaded router up to simulation noise. Its front holds only the deployments it
simulated: each surviving group's fewest replicas, and the probes above them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from workers.tune.outcome import Outcome
from workers.tune.space import Candidate, EngineGroup

Evaluate = Callable[[Candidate], Outcome]


@dataclass(frozen=True)
class SearchResult:
    """Every simulated deployment in the order simulated, and the groups the search cut
    short (not simulated, or not beyond a cap) with the reason."""

    outcomes: tuple[Outcome, ...]
    skipped: dict[EngineGroup, str] = field(default_factory=dict)

    @property
    def judged(self) -> int:
        return len(self.outcomes)


def brute_force(
    groups: Sequence[EngineGroup], max_replicas: int, evaluate: Evaluate
) -> SearchResult:
    """Every group with every replica count from 1 to ``max_replicas``."""
    return SearchResult(
        tuple(evaluate(g.with_replicas(r)) for g in groups for r in range(1, max_replicas + 1))
    )


# Cost comparisons allow a relative slack so equal costs computed two ways stay equal.
_SLACK = 1e-9


def bisect_search(
    groups: Sequence[EngineGroup],
    max_replicas: int,
    evaluate: Evaluate,
    usd_per_replica: Callable[[EngineGroup], float],
) -> SearchResult:
    """The fewest replicas meeting the SLO per group, skipping what cannot beat the best."""
    outcomes: list[Outcome] = []
    skipped: dict[EngineGroup, str] = {}
    seen: set[Candidate] = set()

    def run(candidate: Candidate) -> bool:
        outcome = evaluate(candidate)
        if candidate not in seen:
            seen.add(candidate)
            outcomes.append(outcome)
        return outcome.meets_slo

    best_usd, best_label = math.inf, ""
    for group in sorted(groups, key=lambda g: (usd_per_replica(g), g)):
        per_replica = usd_per_replica(group)
        cap = max_replicas
        if best_usd < math.inf:
            cap = min(cap, math.floor(best_usd / per_replica * (1 + _SLACK)))
        bound = f"{best_label} costs ${best_usd:,.2f}/h"
        if cap < 1:
            skipped[group] = f"not simulated: one replica costs ${per_replica:,.2f}/h; {bound}"
            continue
        if not run(group.with_replicas(cap)):
            if cap < max_replicas:
                skipped[group] = f"more would cost more: {bound}"
            continue
        low, high = 0, cap  # low fails (or is zero), high meets the SLO
        while high - low > 1:
            middle = (low + high) // 2
            if run(group.with_replicas(middle)):
                high = middle
            else:
                low = middle
        usd = per_replica * high
        if usd < best_usd * (1 - _SLACK):
            best_usd, best_label = usd, group.with_replicas(high).label
    return SearchResult(tuple(outcomes), skipped)
