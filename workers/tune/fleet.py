"""Simulate one candidate deployment: its replicas behind a least-loaded router, replaying
the whole trace in virtual time with the calibrated engine model.

Three things keep a sweep cheap, none of which changes an outcome:

- Replays are deterministic, so outcomes are memoized.
- With ``early_stop`` a replay ends the moment more requests have missed a target than the
  p95 allows (see ``workers.tune.outcome``): deployments that cannot meet the SLO, the
  bulk of any sweep, cost a fraction of a full replay.
- With ``reuse`` a deployment is not replayed when one with the same GPU, ``tp`` and
  replicas was whose batch limits are each equal or lower and, where lower, never bound:
  for ``max_num_seqs``, no request waited while the batch was full; for
  ``max_num_batched_tokens``, no step used its whole token budget. The scheduler then took
  every decision the larger limit would take, so the replay would be the same step for
  step (a test replays both ways and compares).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from workers.sim.engine import RequestRecord
from workers.sim.engine_config import EngineConfig
from workers.sim.replay import ReplayRequest, VirtualEngine, least_loaded, run_fleet
from workers.sim.sequence import Step
from workers.tune.outcome import (
    Breached,
    Outcome,
    Slo,
    allowed_misses,
    itl,
    measure,
    ttft,
)
from workers.tune.space import Candidate, EngineGroup, ProfileFor


class _Stop(Exception):
    def __init__(self, broken: Literal["ttft", "itl"], misses: int, finished: int) -> None:
        super().__init__(broken)
        self.broken: Literal["ttft", "itl"] = broken
        self.misses = misses
        self.finished = finished


class _MissCounter:
    """Counts misses as requests finish and stops the replay once the SLO is lost."""

    def __init__(self, slo: Slo, refused: int, ttft_budget: int, itl_budget: int) -> None:
        self._slo = slo
        self._ttft_budget = ttft_budget
        self._itl_budget = itl_budget
        self.ttft_misses = refused
        self.itl_misses = 0
        self.finished = 0

    def check(self) -> None:
        if self.ttft_misses > self._ttft_budget:
            raise _Stop("ttft", self.ttft_misses, self.finished)
        if self.itl_misses > self._itl_budget:
            raise _Stop("itl", self.itl_misses, self.finished)

    def __call__(self, engine: int, records: Sequence[RequestRecord]) -> None:
        for record in records:
            self.finished += 1
            if ttft(record) > self._slo.ttft_p95_s:
                self.ttft_misses += 1
            gap = itl(record)
            if gap is not None and gap > self._slo.itl_p95_s:
                self.itl_misses += 1
        self.check()


class _WatchedEngine(VirtualEngine):
    """A ``VirtualEngine`` that notes whether its batch limits ever bound: a request that
    waited while ``max_num_seqs`` were running, or a step that used its whole token budget
    (which is also when a prompt chunk gets cut)."""

    seqs_bound = False
    tokens_bound = False

    def start_step(self, now: float, horizon: float = float("inf")) -> Step | None:
        self._note_full_batch()  # the decode steps skipped next would admit with more seats
        step = super().start_step(now, horizon)
        if step is not None:
            if step.batch.num_tokens >= self.config.max_num_batched_tokens:
                self.tokens_bound = True
            self._note_full_batch()
        return step

    def _note_full_batch(self) -> None:
        core = self.core
        if core.num_waiting and core.num_running >= self.config.max_num_seqs:
            self.seqs_bound = True


@dataclasses.dataclass(frozen=True, slots=True)
class _Limits:
    """A replayed deployment and which of its batch limits bound in any replica."""

    candidate: Candidate
    seqs_bound: bool
    tokens_bound: bool

    def same_as_larger(self, group: EngineGroup) -> bool:
        """Whether ``group`` (same GPU, tp and replicas) would replay identically: each of
        its limits equals this one's, or is larger and this one's never bound."""
        mine = self.candidate.group
        seqs = mine.max_num_seqs == group.max_num_seqs or (
            mine.max_num_seqs < group.max_num_seqs and not self.seqs_bound
        )
        tokens = mine.max_num_batched_tokens == group.max_num_batched_tokens or (
            mine.max_num_batched_tokens < group.max_num_batched_tokens and not self.tokens_bound
        )
        return seqs and tokens


OnOutcome = Callable[[Outcome, Candidate | None], None]
"""Hears of each outcome as it is decided, with the deployment it was copied from (or None
when it was replayed)."""


class FleetEvaluator:
    """``evaluate(candidate) -> Outcome`` for a search, over one trace and SLO."""

    def __init__(
        self,
        requests: Sequence[ReplayRequest],
        profile_for: ProfileFor,
        base_config: EngineConfig,
        prices: Mapping[str, float],
        slo: Slo,
        *,
        early_stop: bool = True,
        reuse: bool = True,
        on_outcome: OnOutcome | None = None,
    ) -> None:
        if base_config.max_model_len is None:
            raise ValueError("base_config needs an explicit max_model_len")
        self._requests = sorted(requests, key=lambda r: r.arrival_s)
        self._profile_for = profile_for
        self._base = base_config
        self._prices = prices
        self._slo = slo
        self._early_stop = early_stop
        self._reuse = reuse
        self._on_outcome = on_outcome
        self._cache: dict[Candidate, Outcome] = {}
        # (hardware, tp, replicas) -> the deployments replayed, with their limits' fate
        self._replayed: dict[tuple[str, int, int], list[_Limits]] = {}
        self.same_as: dict[Candidate, Candidate] = {}
        self.simulations = 0
        max_len = base_config.max_model_len
        accepted = [r for r in self._requests if 0 < r.prompt_tokens < max_len]
        self._refused = len(self._requests) - len(accepted)
        multi_token = sum(
            1 for r in accepted if min(r.output_tokens, max_len - r.prompt_tokens) > 1
        )
        self._ttft_budget = allowed_misses(len(self._requests))
        self._itl_budget = allowed_misses(multi_token)

    @property
    def num_requests(self) -> int:
        return len(self._requests)

    def usd_per_hour(self, candidate: Candidate) -> float:
        return self._prices[candidate.group.hardware] * candidate.gpus

    def __call__(self, candidate: Candidate) -> Outcome:
        if candidate in self._cache:
            return self._cache[candidate]
        source = self._equivalent(candidate)
        if source is not None:
            outcome = dataclasses.replace(self._cache[source], candidate=candidate)
            self.same_as[candidate] = source
        else:
            outcome, limits = self._simulate(candidate)
            self.simulations += 1
            self._replayed.setdefault(_family(candidate), []).append(limits)
        self._cache[candidate] = outcome
        if self._on_outcome is not None:
            self._on_outcome(outcome, source)
        return outcome

    def _equivalent(self, candidate: Candidate) -> Candidate | None:
        if not self._reuse:
            return None
        for limits in self._replayed.get(_family(candidate), []):
            if limits.same_as_larger(candidate.group):
                return limits.candidate
        return None

    def _simulate(self, candidate: Candidate) -> tuple[Outcome, _Limits]:
        group = candidate.group
        profile = self._profile_for(group.hardware, group.tp)
        config = group.engine_config(self._base)
        usd_per_hour = self.usd_per_hour(candidate)
        counter = _MissCounter(self._slo, self._refused, self._ttft_budget, self._itl_budget)
        engines = [_WatchedEngine(profile, config) for _ in range(candidate.replicas)]
        try:
            if self._early_stop:
                counter.check()
            report = run_fleet(
                engines,
                self._requests,
                least_loaded,
                on_finished=counter if self._early_stop else None,
            )
        except _Stop as stop:
            # The same up to here with larger limits, so stopped at the same point.
            breached = Breached(
                candidate=candidate,
                usd_per_hour=usd_per_hour,
                requests=len(self._requests),
                finished=stop.finished,
                broken=stop.broken,
                misses=stop.misses,
            )
            return breached, _limits(candidate, engines)
        first = self._requests[0].arrival_s if self._requests else 0.0
        measured = measure(
            candidate, usd_per_hour, report.records, len(self._requests), first, self._slo
        )
        return measured, _limits(candidate, engines)


def _limits(candidate: Candidate, engines: Sequence[_WatchedEngine]) -> _Limits:
    return _Limits(
        candidate,
        seqs_bound=any(e.seqs_bound for e in engines),
        tokens_bound=any(e.tokens_bound for e in engines),
    )


def _family(candidate: Candidate) -> tuple[str, int, int]:
    return (candidate.group.hardware, candidate.group.tp, candidate.replicas)
