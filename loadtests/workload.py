"""The composition root of one load-test process: config -> trace, traffic, shape, budget.

Built once per Locust process at test start and shared by its users. It holds the only
mutable run state (requests sent and in flight), which users change around each request
and the shape reads every second. Nothing here imports Locust or reads a clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loadtests.options import LoadTestConfig
from loadtests.shapes import (
    ConstantShape,
    LoadSnapshot,
    ReplaySchedule,
    ReplayShape,
    Shape,
    SpikeShape,
    StepShape,
    Tick,
)
from loadtests.tracefile import LengthLimits, LengthSampler, Trace, TraceRow
from loadtests.traffic import TrafficPlanner, TrafficSpec, parse_weighted


@dataclass(frozen=True, slots=True)
class CommonOptions:
    """Locust's own ``-u``, ``-r`` and ``-t``, which the constant shape uses."""

    users: int = 1
    spawn_rate: float = 1.0
    run_time_s: float | None = None


def build_shape(
    config: LoadTestConfig, common: CommonOptions, schedule: ReplaySchedule | None = None
) -> Shape:
    if config.shape == "step":
        return StepShape(
            config.start_users, config.step_users, config.step_time, config.steps, common.spawn_rate
        )
    if config.shape == "spike":
        return SpikeShape(
            config.base_users,
            config.spike_users,
            config.spike_at,
            config.spike_time,
            config.shape_time,
            # A spike is sudden: all its users start within a second unless -r is faster.
            max(common.spawn_rate, float(config.spike_users)),
        )
    if config.shape == "replay":
        if schedule is None:
            raise ValueError("a replay needs its schedule")
        headroom = schedule.peak_arrivals(1.0) + 1
        return ReplayShape(
            schedule.last_arrival_s,
            min_users=min(max(config.replay_users, headroom), config.replay_max_users),
            max_users=config.replay_max_users,
            headroom=headroom,
            drain_s=config.drain_time,
        )
    return ConstantShape(common.users, common.spawn_rate)


def build_spec(config: LoadTestConfig, served_models: tuple[str, ...]) -> TrafficSpec:
    models = config.models or (served_models[0] if served_models else "")
    if not models:
        raise ValueError("no model to ask for: pass --models (the server listed none)")
    return TrafficSpec(
        models=parse_weighted(models, what="--models"),
        priorities=parse_weighted(config.priorities, what="--priorities")
        if config.priorities
        else None,
        stream_ratio=config.stream_ratio,
        max_turns=config.max_turns,
        session_mode=config.session_mode,
        system_prompt_tokens=config.system_prompt_tokens,
        max_prompt_tokens=config.max_input_tokens,
        ignore_eos=config.ignore_eos,
    )


@dataclass(frozen=True, slots=True)
class Job:
    row: TraceRow
    due_s: float | None
    """Replay: when to send it, in seconds since the run started; None: now."""


class Workload:
    def __init__(
        self,
        config: LoadTestConfig,
        trace: Trace,
        spec: TrafficSpec | None,
        common: CommonOptions,
    ) -> None:
        self.config = config
        self.trace = trace
        self.spec = spec
        self.limits = LengthLimits(config.max_input_tokens, config.max_output_tokens)
        self.schedule = (
            ReplaySchedule(trace.rows, config.speedup, config.max_requests)
            if config.shape == "replay"
            else None
        )
        self.shape = build_shape(config, common, self.schedule)
        self.run_time_s = common.run_time_s
        self.sent = 0
        self.in_flight = 0
        self.held = 0
        self.broken: str | None = None
        """Why this process cannot send (no model to ask for): the run ends at once."""
        self._users = 0

    @property
    def replay(self) -> bool:
        return self.schedule is not None

    def user_traffic(self) -> tuple[TrafficPlanner, LengthSampler]:
        """A planner and a sampler for the next user, each with its own seeded stream, so
        a run is reproducible for a given seed and user count."""
        if self.spec is None:
            raise RuntimeError("this process sends no traffic (no model was configured)")
        index = self._users
        self._users += 1
        rng = random.Random(f"{self.config.seed}:{index}")
        return TrafficPlanner(self.spec, rng), LengthSampler(self.trace, rng, self.limits)

    def next_request(self, sampler: LengthSampler) -> Job | None:
        """The next request to send, or None when nothing is left (budget used up, every
        arrival taken). The caller then calls :meth:`sending` when it sends the request
        (a replay arrival may first wait for its time) and :meth:`finished` at the end;
        the run does not end while a request is held or in flight."""
        if self.budget_used:
            return None
        if self.schedule is None:
            job = Job(sampler.sample(), None)
        else:
            arrival = self.schedule.take()
            if arrival is None:
                return None
            job = Job(self.limits.apply(arrival.row), arrival.due_s)
        self.sent += 1
        self.held += 1
        return job

    def sending(self) -> None:
        self.held -= 1
        self.in_flight += 1

    def finished(self, sent: bool = True) -> None:
        if sent:
            self.in_flight -= 1
        else:
            self.held -= 1

    @property
    def budget_used(self) -> bool:
        return self.config.max_requests is not None and self.sent >= self.config.max_requests

    @property
    def exhausted(self) -> bool:
        if self.broken is not None:
            return True
        if self.schedule is not None:
            return self.schedule.exhausted or self.budget_used
        return self.budget_used

    def tick(self, run_time_s: float, users: int) -> Tick:
        """The shape's answer, also ending the run at ``-t`` whatever the shape."""
        if self.run_time_s is not None and run_time_s >= self.run_time_s:
            return None
        snapshot = LoadSnapshot(
            in_flight=self.in_flight, waiting=self.held, exhausted=self.exhausted, users=users
        )
        return self.shape.tick(run_time_s, snapshot)
