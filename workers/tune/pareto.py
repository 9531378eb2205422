"""Which deployments are worth having, and why each of the others loses. Pure functions.

- The **front**: deployments that meet the SLO and that no other such deployment beats on
  all of cost per hour, p95 TTFT and p95 ITL (at least as good on each, better on one);
  of several exactly equal ones, only the first in recommendation order.
- The **recommendation**: the cheapest deployment that meets the SLO; among equally cheap
  ones on the front, the most goodput tokens per dollar, then the lowest p95 TTFT, ITL,
  then the smaller limits (``rank_key``): the first of the front.
- A **verdict** for everything else: vLLM would not start it (``memory``, ``invalid``),
  it breaks the SLO (``slo``), a front deployment is at least as cheap and as fast
  (``dominated``), or it was not simulated because it could not be cheaper than a
  deployment already found (``cost``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from workers.tune.outcome import Breached, Measured, Outcome, Slo
from workers.tune.space import Candidate, EngineGroup, Misfit

VerdictKind = Literal["recommended", "front", "dominated", "slo", "memory", "invalid", "cost"]


def rank_key(m: Measured) -> tuple[float, float, float, float, Candidate]:
    """Cheapest, most goodput per dollar, fastest; on a full tie the smaller deployment
    (GPU name, then fewer GPUs per replica, lower limits, fewer replicas)."""
    return (m.usd_per_hour, -m.goodput_per_usd, m.ttft_p95_s, m.itl_p95_s, m.candidate)


def dominates(a: Measured, b: Measured) -> bool:
    """``a`` is no worse than ``b`` on cost and both p95s, and better on one of them or,
    on an exact tie, first in ``rank_key`` order (so the front holds one of equals)."""
    if a == b:
        return False
    no_worse = (
        a.usd_per_hour <= b.usd_per_hour
        and a.ttft_p95_s <= b.ttft_p95_s
        and a.itl_p95_s <= b.itl_p95_s
    )
    better = (
        a.usd_per_hour < b.usd_per_hour or a.ttft_p95_s < b.ttft_p95_s or a.itl_p95_s < b.itl_p95_s
    )
    return no_worse and (better or rank_key(a) < rank_key(b))


def passing(outcomes: Iterable[Outcome]) -> list[Measured]:
    return [o for o in outcomes if isinstance(o, Measured) and o.meets_slo]


def pareto_front(outcomes: Iterable[Outcome]) -> list[Measured]:
    """The SLO-meeting deployments nobody dominates, cheapest first."""
    ok = passing(outcomes)
    front = [m for m in ok if not any(dominates(o, m) for o in ok)]
    return sorted(front, key=rank_key)


def recommend(outcomes: Iterable[Outcome]) -> Measured | None:
    """The first of the front: the cheapest, then the most goodput per dollar."""
    front = pareto_front(outcomes)
    return front[0] if front else None


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    reason: str


def _money(usd_per_hour: float) -> str:
    return f"${usd_per_hour:,.2f}/h"


def slo_reason(outcome: Outcome, slo: Slo) -> str:
    """Why a deployment breaks the SLO, with the numbers."""
    if isinstance(outcome, Breached):
        target = slo.ttft_p95_s if outcome.broken == "ttft" else slo.itl_p95_s
        return (
            f"{outcome.broken.upper()} p95 > {target:g} s: {outcome.misses:,} misses after "
            f"{outcome.finished:,} of {outcome.requests:,} requests (replay stopped)"
        )
    parts = []
    if outcome.ttft_p95_s > slo.ttft_p95_s:
        parts.append(f"TTFT p95 {outcome.ttft_p95_s:.3g} s > {slo.ttft_p95_s:g} s")
    if outcome.itl_p95_s > slo.itl_p95_s:
        parts.append(f"ITL p95 {outcome.itl_p95_s:.3g} s > {slo.itl_p95_s:g} s")
    return ", ".join(parts)


def judge(outcome: Outcome, front: Sequence[Measured], slo: Slo) -> Verdict:
    """The verdict on one simulated deployment, given the front (cheapest first, the
    recommendation first of all)."""
    if not outcome.meets_slo:
        return Verdict("slo", slo_reason(outcome, slo))
    assert isinstance(outcome, Measured)
    if front and outcome == front[0]:
        return Verdict("recommended", "the cheapest deployment that meets the SLO")
    if outcome in front:
        extra = outcome.usd_per_hour - front[0].usd_per_hour
        cost = f"{_money(extra)} more than" if extra > 0 else "the same cost as"
        return Verdict(
            "front",
            f"{cost} the recommendation for TTFT p95 {outcome.ttft_p95_s:.3g} s, "
            f"ITL p95 {outcome.itl_p95_s:.3g} s",
        )
    by = next(m for m in front if dominates(m, outcome))
    if (by.usd_per_hour, by.ttft_p95_s, by.itl_p95_s) == (
        outcome.usd_per_hour,
        outcome.ttft_p95_s,
        outcome.itl_p95_s,
    ):
        return Verdict(
            "dominated", f"ties with {by.candidate.label} on cost and latency (it ranks first)"
        )
    return Verdict(
        "dominated",
        f"{by.candidate.label} costs {_money(by.usd_per_hour)} "
        f"(vs {_money(outcome.usd_per_hour)}) and is no slower",
    )


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """One engine configuration on one GPU type: its best deployment and verdict."""

    group: EngineGroup
    verdict: Verdict
    best: Outcome | None  # the cheapest passing one, else the one with the most replicas


def summarize_groups(
    groups: Sequence[EngineGroup],
    outcomes: Sequence[Outcome],
    misfits: Sequence[Misfit],
    skipped: dict[EngineGroup, str],
    front: Sequence[Measured],
    slo: Slo,
) -> list[GroupSummary]:
    """A verdict per group, in the order given: why its best deployment wins or loses."""
    misfit_of = {m.group: m for m in misfits}
    by_group: dict[EngineGroup, list[Outcome]] = {}
    for outcome in outcomes:
        by_group.setdefault(outcome.candidate.group, []).append(outcome)
    rows: list[GroupSummary] = []
    for group in groups:
        if group in misfit_of:
            misfit = misfit_of[group]
            rows.append(GroupSummary(group, Verdict(misfit.kind, misfit.reason), None))
            continue
        tried = by_group.get(group, [])
        ok = passing(tried)
        if ok:
            best: Outcome = min(ok, key=rank_key)
            rows.append(GroupSummary(group, judge(best, front, slo), best))
        elif tried:
            best = max(tried, key=lambda o: o.candidate.replicas)
            verdict = judge(best, front, slo)
            count = best.candidate.replicas
            reason = f"{verdict.reason} with {count} replica{'s' if count > 1 else ''}"
            if group in skipped:
                reason += f"; {skipped[group]}"
            rows.append(GroupSummary(group, Verdict("slo", reason), best))
        else:
            rows.append(GroupSummary(group, Verdict("cost", skipped.get(group, "")), None))
    return rows
