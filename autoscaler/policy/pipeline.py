"""How many replicas a model needs, as a pipeline of small pure steps.

demand (arrival rate / learned capacity per replica) -> forecast (the rate a lead time
ahead, where it rises; off by default) -> latency correction (observed
TTFT/ITL p95s against the SLO, or with an objective the share of requests missing it
against the error budget) -> burst fast path (queue growth) -> no scale-down on missing or
stale signals -> stabilisation (scale up on the lowest, down on the highest recommendation
of a window; a scale-up the latency or burst step set skips the window, as the SLO is
being missed now) -> rate limits -> min/max. Each step records what it set and why, so the status
and the log line can say which step decided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.policy.forecast import projected_rate
from autoscaler.policy.observation import Observation, Slo, allowed_misses, miss_share


@dataclass(frozen=True, slots=True)
class Behavior:
    min_replicas: int = 1
    max_replicas: int = 100
    tolerance: float = 0.1
    """Relative change below which nothing moves (HPA's default tolerance)."""
    scale_up_window_s: float = 0.0
    scale_down_window_s: float = 300.0
    max_scale_up_per_min: int = 8
    max_scale_down_per_min: int = 2
    max_latency_correction: float = 2.0
    queue_per_replica: float = 8.0
    """Queued requests one new replica is expected to absorb quickly (burst path)."""
    forecast_lead_s: float = 0.0
    """How far ahead demand is projected from the trend of recent arrival rates: the time
    a new replica takes to become ready (0: demand is the current rate)."""
    forecast_window_s: float = 600.0
    """The arrival rates the trend is fitted over."""
    max_forecast_gain: float = 1.5
    """The projection is at most this many times the current rate."""
    breach_z: float = 2.0
    """A miss share corrects only when it exceeds the error budget by this many binomial
    standard deviations for the window's request count: in a window of 200 requests, a
    1% budget is two misses and three is noise, yet added a replica."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    replicas: int
    why: str


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    steps: tuple[Step, ...]

    @property
    def decided_by(self) -> Step:
        """The last step that changed the number."""
        pairs = zip(self.steps, self.steps[1:], strict=False)
        changed = [s for prev, s in pairs if s.replicas != prev.replicas]
        return changed[-1] if changed else self.steps[0]


@dataclass(frozen=True, slots=True)
class History:
    """What earlier decisions saw and did, oldest first; the caller keeps it between calls."""

    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, replicas the demand steps asked for, before stabilisation and limits)."""
    changes: tuple[tuple[float, int], ...] = ()
    """(time, replicas added or removed) of applied changes."""
    last_replicas: int | None = None
    arrivals: tuple[tuple[float, float], ...] = ()
    """(time, arrival rate) as observed, for the demand forecast."""

    def record(
        self,
        decision: Decision,
        at: float,
        keep_s: float = 3600.0,
        arrival_rps: float | None = None,
    ) -> History:
        asked = _recommended(decision)
        recs = tuple((t, r) for t, r in self.recommendations if at - t <= keep_s)
        changes = tuple((t, d) for t, d in self.changes if at - t <= 60.0)
        current = decision.steps[0].replicas
        if decision.replicas != current:
            changes = (*changes, (at, decision.replicas - current))
        arrivals = tuple((t, r) for t, r in self.arrivals if at - t <= keep_s)
        if arrival_rps is not None:
            arrivals = (*arrivals, (at, arrival_rps))
        return History((*recs, (at, asked)), changes, decision.replicas, arrivals)


def _recommended(decision: Decision) -> int:
    """The number before stabilisation, rate limits and bounds."""
    for step in reversed(decision.steps):
        if step.name not in {"stabilize", "rate-limit", "bounds"}:
            return step.replicas
    return decision.replicas


def decide(
    obs: Observation,
    slo: Slo,
    capacity_rps: float,
    behavior: Behavior,
    history: History | None = None,
    *,
    capacity_source: str = "",
) -> Decision:
    """``capacity_source`` says where ``capacity_rps`` came from (say, "learned from 12
    intervals, prior 2.00"); the demand step's reason names it."""
    history = history or History()
    current = obs.ready_replicas if history.last_replicas is None else history.last_replicas
    steps = [Step("current", current, f"{current} replicas now")]
    desired = _demand(obs, capacity_rps, capacity_source, current, steps)
    desired = _forecast(obs, capacity_rps, desired, behavior, history, steps)
    desired, missing = _latency(obs, slo, desired, behavior, steps)
    desired = _burst(obs, desired, behavior, steps)
    # The SLO is being missed now (latency says so, or a queue set the number): scale up
    # without waiting out the scale-up window, as the KPA's panic mode does. That holds
    # where demand asked for as much as the latency correction would.
    burst = steps[-1].name == "burst" and steps[-1].replicas == desired
    slo_breached = missing or burst
    desired = _hold_on_missing(obs, desired, current, steps)
    desired = _tolerance(desired, current, behavior, steps)
    desired = _stabilize(obs.at, desired, current, behavior, history, steps, slo_breached)
    desired = _rate_limit(obs.at, desired, current, behavior, history, steps)
    clamped = min(max(desired, behavior.min_replicas), behavior.max_replicas)
    if clamped != desired:
        steps.append(
            Step(
                "bounds", clamped, f"kept within [{behavior.min_replicas}, {behavior.max_replicas}]"
            )
        )
    return Decision(clamped, tuple(steps))


def _demand(
    obs: Observation, capacity_rps: float, source: str, current: int, steps: list[Step]
) -> int:
    if obs.arrival_rps is None or capacity_rps <= 0:
        steps.append(Step("demand", current, "no arrival rate: keep the current count"))
        return current
    needed = math.ceil(obs.arrival_rps / capacity_rps - 1e-9)
    why = f"{obs.arrival_rps:.2f} req/s at {capacity_rps:.2f} req/s per replica"
    steps.append(Step("demand", needed, f"{why} ({source})" if source else why))
    return needed


def _forecast(
    obs: Observation,
    capacity_rps: float,
    desired: int,
    b: Behavior,
    history: History,
    steps: list[Step],
) -> int:
    if obs.arrival_rps is None or capacity_rps <= 0:
        return desired
    ahead = projected_rate(
        history.arrivals,
        obs.at,
        obs.arrival_rps,
        lead_s=b.forecast_lead_s,
        window_s=b.forecast_window_s,
        max_gain=b.max_forecast_gain,
    )
    if ahead is None:
        return desired
    needed = max(desired, math.ceil(ahead.rps / capacity_rps - 1e-9))
    if needed != desired:
        why = (
            f"rising {ahead.slope_per_s * 60:.2f} req/s per min: {ahead.rps:.2f} req/s "
            f"in {b.forecast_lead_s:g}s"
        )
        steps.append(Step("forecast", needed, why))
    return needed


def _latency(
    obs: Observation, slo: Slo, desired: int, b: Behavior, steps: list[Step]
) -> tuple[int, bool]:
    """The corrected count, and whether the SLO is being missed now."""
    ratios = [
        r
        for r in (_ratio(obs.ttft_p95_s, slo.ttft_p95_s), _ratio(obs.itl_p95_s, slo.itl_p95_s))
        if r is not None
    ]
    factor, why = (max(ratios), f"latency at {max(ratios):.2f}x its SLO") if ratios else (0, "")
    miss = miss_share(obs, slo)
    budget = None if slo.objective is None else allowed_misses(obs, slo.objective, b.breach_z)
    # With an objective and a known miss share, the share decides, not the p95s: a queue
    # takes the p95 far past its target for a small shortage, and a correction by it
    # doubled a fleet that was one replica short. Over the error budget, the share of
    # requests missing is taken as the share of demand the fleet is short of.
    if miss is not None and budget is not None:
        factor, why = 0.0, ""
        if miss > budget:
            factor, why = 1 + miss, f"{miss:.1%} of requests missing the SLO"
    if factor <= 1.0:
        return desired, False
    factor = min(factor, b.max_latency_correction)
    corrected = max(desired, math.ceil(max(obs.ready_replicas, 1) * factor - 1e-9))
    if corrected != desired:
        steps.append(Step("latency", corrected, why))
    return corrected, True


def _burst(obs: Observation, desired: int, b: Behavior, steps: list[Step]) -> int:
    if obs.queued is None or obs.queued <= 0:
        return desired
    ready = obs.ready_replicas
    if ready > 0 and obs.queued <= b.queue_per_replica * ready:
        return desired
    extra = math.ceil(obs.queued / b.queue_per_replica) - max(ready, 1)
    burst = max(desired, ready + extra, 1)  # at least one: held requests wake a model at zero
    if burst != desired:
        steps.append(Step("burst", burst, f"{obs.queued:.0f} requests queued"))
    return burst


def _hold_on_missing(obs: Observation, desired: int, current: int, steps: list[Step]) -> int:
    missing = not obs.fresh or obs.arrival_rps is None
    if missing and desired < current:
        steps.append(Step("hold", current, "signals missing or stale: never scale down"))
        return current
    return desired


def _tolerance(desired: int, current: int, b: Behavior, steps: list[Step]) -> int:
    if current > 0 and desired != current and abs(desired - current) / current <= b.tolerance:
        steps.append(Step("tolerance", current, f"within {b.tolerance:.0%} of current"))
        return current
    return desired


def _stabilize(
    at: float,
    desired: int,
    current: int,
    b: Behavior,
    history: History,
    steps: list[Step],
    slo_breached: bool = False,
) -> int:
    if desired > current and b.scale_up_window_s > 0 and not slo_breached:
        window = [*_window(history.recommendations, at, b.scale_up_window_s), desired]
        stable = max(current, min(window))
        reason = f"lowest recommendation of the last {b.scale_up_window_s:g}s"
    elif desired < current and b.scale_down_window_s > 0:
        window = [*_window(history.recommendations, at, b.scale_down_window_s), desired]
        stable = min(current, max(window))
        reason = f"highest recommendation of the last {b.scale_down_window_s:g}s"
    else:
        return desired
    if stable != desired:
        steps.append(Step("stabilize", stable, reason))
    return stable


def _rate_limit(
    at: float, desired: int, current: int, b: Behavior, history: History, steps: list[Step]
) -> int:
    """Changes applied in the last minute count against the per-minute budgets."""
    recent = [d for t, d in history.changes if at - t < 60.0]
    added = sum(d for d in recent if d > 0)
    removed = -sum(d for d in recent if d < 0)
    if desired > current:
        limited = min(desired, current + max(0, b.max_scale_up_per_min - added))
    else:
        limited = max(desired, current - max(0, b.max_scale_down_per_min - removed))
    if limited != desired:
        budget = f"+{b.max_scale_up_per_min}/-{b.max_scale_down_per_min}"
        steps.append(Step("rate-limit", limited, f"at most {budget} replicas per minute"))
    return limited


def _window(recommendations: Sequence[tuple[float, int]], at: float, window_s: float) -> list[int]:
    return [r for t, r in recommendations if at - t <= window_s]


def _ratio(observed: float | None, target: float) -> float | None:
    return None if observed is None or target <= 0 else observed / target
