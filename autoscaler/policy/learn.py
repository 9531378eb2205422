"""Capacity per replica, learned online from the throughput observed against the SLO.

The pipeline's demand step divides the arrival rate by what one replica serves within the
SLO. That number starts as a prior (the ModelScaler's ``capacityPerReplicaRps``, or the
simulator profile's estimate in the what-if replay) and is then corrected by what each
interval shows, one pure step over an immutable estimate:

- latency within the SLO while each ready replica served ``x`` requests/s: capacity is at
  least ``x``. Only a higher ``x`` says anything new, so the estimate moves up towards it;
- latency over the SLO at ``x``: capacity is below ``x``, so an estimate above
  ``x * (1 - over_margin)`` moves down towards that, faster than it moves up (a low
  estimate costs replicas, a high one breaks the SLO). The margin matters: a fleet sized
  from a too-high estimate runs each replica at about the estimate, so the breaches it
  causes happen at ``x`` near the estimate, never below it;
- latency far within the SLO (at most ``probe_headroom`` of it) while the replicas are
  busy (each near the estimate): the estimate probes up by ``probe_step``. Without this
  the estimate would rarely rise: demand sizes the fleet from the estimate, so the
  per-replica throughput seen exceeds it only while scale-up lags. An overshoot meets the
  upper bound above (additive increase, faster decrease);
- nothing is learned from stale or missing signals, from an interval with no ready
  replica or no latency signal, from one in which the ready count changed (a preemption
  halving the fleet would otherwise read as each survivor serving twice the load), from
  one that carried a backlog (requests queued beyond ``backlog_per_replica`` per ready
  replica: their latency is the wait for an earlier shortage to clear, a preemption's or a
  lagged ramp's, not what the replicas serve), or from an idle one (``x`` below
  ``idle_share`` of the estimate: slow requests at low load say little about capacity);
- the estimate stays within ``[prior / band, prior * band]``, so a run of odd intervals
  (cold caches, unusually long prompts) cannot take it anywhere absurd.

The gateway counts a request when it is answered, so its arrival rate is the throughput.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from autoscaler.policy.observation import Observation, Slo, allowed_misses, miss_share


@dataclass(frozen=True, slots=True)
class LearnSettings:
    enabled: bool = True
    rate_up: float = 0.2
    """Share of the gap to a higher lower bound closed per interval (EWMA weight)."""
    rate_down: float = 0.3
    """Share of the gap to a lower upper bound closed per interval (faster moves chased
    transient breaches, a preemption's or a ramp's, in the day-long replay)."""
    band: float = 2.0
    """The estimate stays within [prior / band, prior * band]."""
    idle_share: float = 0.25
    """Per-replica throughput below this share of the estimate is an idle interval."""
    busy_share: float = 0.8
    """Per-replica throughput at this share of the estimate or above is busy."""
    probe_headroom: float = 0.5
    """Latency at most this share of its SLO, while busy, lets the estimate probe up."""
    probe_step: float = 0.0
    """Off by default: in the day-long replay, probes compounded faster than breaches could
    correct them through minutes of provisioning (docs/replay.md)."""
    over_margin: float = 0.1
    """Over the SLO at x, capacity is taken to be at most x * (1 - over_margin)."""
    spacing_s: float = 60.0
    """After a move, wait this long before the next: the signal window, so an interval
    shorter than the window does not count the same requests again."""
    settle_s: float = 60.0
    """After the ready count changes, nothing is learned for this long: requests admitted
    before the change still finish, and count, in the windows after it. Three minutes
    made the replayed spot fleet cheaper, but the misses that show an estimate too high
    are the ones that bring a scale-up, so a longer wait hid them: on on-demand only the
    day ended at 97.5-98.8% (docs/replay.md)."""
    backlog_per_replica: float = 8.0
    """Queued requests per ready replica above which an interval carries a backlog (the
    pipeline's burst threshold; the controller passes its ``queuePerReplica``)."""
    breach_z: float = 0.0
    """Judged by the error budget, a window is over the SLO only when its misses exceed the
    budget by this many binomial standard deviations for its request count; it is within
    only at or under the budget itself, and in between nothing is learned. Off by
    default: with a margin of 2, windows just within the budget moved the estimate up
    and windows just over it did not move it down, so it settled where about 2% missed
    (on-demand only, the replayed day ended at 97.5%)."""
    backlog_hold_s: float = 300.0
    """Nothing is learned for this long after a backlog: the requests it delayed finish,
    and count in the windows, for minutes after the queue is gone. Without it, a fleet
    draining the queue a mass preemption left read as a capacity of half the real one,
    which sized the rest of the replayed day (docs/replay.md)."""

    def __post_init__(self) -> None:
        if not (0 < self.rate_up <= 1 and 0 < self.rate_down <= 1):
            raise ValueError("learning rates must be in (0, 1]")
        if self.band < 1:
            raise ValueError("band must be at least 1")
        if not 0 <= self.idle_share <= self.busy_share <= 1:
            raise ValueError("need 0 <= idle_share <= busy_share <= 1")
        if not (0 <= self.probe_headroom < 1 and 0 <= self.probe_step <= 0.5):
            raise ValueError("probe_headroom must be in [0, 1), probe_step in [0, 0.5]")
        if not 0 <= self.over_margin < 1:
            raise ValueError("over_margin must be in [0, 1)")
        if self.breach_z < 0:
            raise ValueError("breach_z must be at least 0")
        if self.settle_s < 0:
            raise ValueError("settle_s must be at least 0")
        if self.backlog_per_replica <= 0 or self.backlog_hold_s < 0:
            raise ValueError("backlog_per_replica must be above 0, backlog_hold_s at least 0")


@dataclass(frozen=True, slots=True)
class CapacityEstimate:
    """Requests/s one replica serves within the SLO, as learned so far."""

    rps: float
    prior_rps: float
    samples: int = 0
    """Intervals that moved the estimate."""
    updated_at: float | None = None
    why: str = "the prior"
    """What the last interval did to the estimate (or why it did nothing)."""
    ready: int | None = None
    """Ready replicas at the last observation, and since when that count has held (None:
    since before the first observation): the window's requests were served by the
    replicas of the window, not by those of its end."""
    ready_since: float | None = None
    backlog_at: float | None = None
    """When a backlog was last seen (None: never)."""

    @classmethod
    def seeded(cls, prior_rps: float) -> CapacityEstimate:
        if prior_rps <= 0:
            raise ValueError("a capacity prior must be above 0")
        return cls(prior_rps, prior_rps, why=f"the prior of {prior_rps:.2f} req/s")

    def resumed(self, rps: float, samples: int, settings: LearnSettings) -> CapacityEstimate:
        """This prior with an estimate learned earlier (bounded again: the band may differ)."""
        bounded = _bounded(rps, self.prior_rps, settings.band)
        return replace(self, rps=bounded, samples=max(0, samples), why="resumed from the status")

    def describe(self) -> str:
        """How the decision's demand step names the capacity it divided by."""
        if self.samples == 0:
            return "the prior"
        plural = "s" if self.samples != 1 else ""
        return f"learned from {self.samples} interval{plural}, prior {self.prior_rps:.2f}"


def learn(
    estimate: CapacityEstimate, obs: Observation, slo: Slo, settings: LearnSettings
) -> CapacityEstimate:
    """The estimate after one interval's observation."""
    if not settings.enabled:
        return replace(estimate, why="learning is off")
    if not obs.fresh or obs.arrival_rps is None:
        return replace(estimate, why="signals stale or missing: nothing learned")
    if obs.ready_replicas <= 0:
        return replace(estimate, why="no ready replica: nothing learned")
    if estimate.ready != obs.ready_replicas:
        # The first count seen has no known start: taken as settled.
        since = None if estimate.ready is None else obs.at
        estimate = replace(estimate, ready=obs.ready_replicas, ready_since=since)
    if estimate.ready_since is not None and obs.at - estimate.ready_since < settings.settle_s:
        return replace(estimate, why="ready replicas changed within the window: nothing learned")
    if obs.queued is not None and obs.queued > settings.backlog_per_replica * obs.ready_replicas:
        why = f"{obs.queued:.0f} requests queued: a backlog, nothing learned"
        return replace(estimate, backlog_at=obs.at, why=why)
    if estimate.backlog_at is not None and obs.at - estimate.backlog_at < settings.backlog_hold_s:
        return replace(estimate, why="a backlog cleared recently: nothing learned")
    if estimate.updated_at is not None and obs.at - estimate.updated_at < settings.spacing_s:
        return replace(estimate, why="the last move's window is still open: nothing learned")
    ratios = _slo_ratios(obs, slo)
    if not ratios:
        return replace(estimate, why="no latency signal: nothing learned")
    per_replica = obs.arrival_rps / obs.ready_replicas
    if per_replica < settings.idle_share * estimate.rps:
        return replace(estimate, why=f"idle at {per_replica:.2f} req/s per replica")
    worst = max(ratios)
    # Within means within the budget; over, beyond it by more than noise. Between the
    # two, a window says nothing either way.
    over = worst > 1.0
    if settings.breach_z > 0:
        over = max(_slo_ratios(obs, slo, settings.breach_z)) > 1.0
    at = f"{per_replica:.2f} req/s per replica"
    if worst <= 1.0 and per_replica > estimate.rps:
        moved = estimate.rps + settings.rate_up * (per_replica - estimate.rps)
        bound = f"within the SLO at {at}"
    elif over and per_replica * (1 - settings.over_margin) < estimate.rps:
        below = per_replica * (1 - settings.over_margin)
        moved = estimate.rps + settings.rate_down * (below - estimate.rps)
        bound = f"over the SLO at {at}"
    elif (
        worst <= settings.probe_headroom
        and settings.probe_step > 0
        and per_replica >= settings.busy_share * estimate.rps
    ):
        moved = estimate.rps * (1 + settings.probe_step)
        bound = f"busy at {at}, latency at {worst:.2f}x its SLO: probing up"
    else:
        side = "within" if worst <= 1.0 else "over" if over else "near"
        return replace(estimate, why=f"{side} the SLO at {at}: consistent")
    if moved == estimate.rps:
        return replace(estimate, why=f"{bound}: at the bound already")
    bounded = _bounded(moved, estimate.prior_rps, settings.band)
    if bounded != moved:
        bound += f" (held within {settings.band:g}x of the prior)"
    return replace(
        estimate,
        rps=bounded,
        samples=estimate.samples + 1,
        updated_at=obs.at,
        why=f"{bound} -> {bounded:.2f}",
    )


def _slo_ratios(obs: Observation, slo: Slo, breach_z: float = 0.0) -> list[float]:
    """How far the interval is from its SLO, 1 at the limit: misses against the error
    budget where both are known (what the objective is about), else the p95s against
    their targets."""
    miss = miss_share(obs, slo)
    if miss is not None and slo.objective is not None and slo.objective < 1:
        return [miss / allowed_misses(obs, slo.objective, breach_z)]
    return [
        observed / target
        for observed, target in ((obs.ttft_p95_s, slo.ttft_p95_s), (obs.itl_p95_s, slo.itl_p95_s))
        if observed is not None and target > 0
    ]


def _bounded(rps: float, prior: float, band: float) -> float:
    return min(max(rps, prior / band), prior * band)


def learned_capacity(
    estimate: CapacityEstimate | None,
    prior_rps: float,
    obs: Observation,
    slo: Slo,
    settings: LearnSettings = LearnSettings(),
) -> CapacityEstimate:
    """One call for a policy that keeps the estimate between intervals: seeds it from
    ``prior_rps`` on the first call (``estimate`` None), then learns from ``obs``."""
    return learn(estimate or CapacityEstimate.seeded(prior_rps), obs, slo, settings)
