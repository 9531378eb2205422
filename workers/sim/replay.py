"""Virtual time: drive engines over a list of arrivals as fast as the CPU allows.

``VirtualEngine`` wraps one ``EngineCore`` with its in-flight step; ``run_fleet`` advances
any number of them and a router in one time-ordered loop (next arrival or next step end,
whichever is earlier); ``simulate`` is the one-engine case. Nothing sleeps: time jumps
from event to event, so hours of trace replay in seconds.

At each instant the loop first completes the steps that end then, then hands the
arrivals of that instant to the router, then starts a step on every engine that is idle
but has work, so requests arriving together share their first step (as they do in vLLM,
whose scheduler sees everything queued before it runs).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from workers.sim.core import EngineCore
from workers.sim.engine import EngineSnapshot, FinishReason, RequestRecord
from workers.sim.engine_config import CoreRequest, EngineConfig
from workers.sim.prefix import TRACE_BLOCK_TOKENS, trace_block_hashes
from workers.sim.profiles import Profile
from workers.sim.sequence import Step


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """One arrival. Prefix identity comes as engine-size ``block_hashes`` or as trace
    ``trace_block_ids`` (mapped to the engine's block size on submission), or not at all."""

    request_id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    block_hashes: tuple[int, ...] | None = None
    trace_block_ids: tuple[int, ...] | None = None
    trace_block_tokens: int = TRACE_BLOCK_TOKENS


Router = Callable[[ReplayRequest, Sequence[EngineSnapshot]], int]
"""Picks the index of the engine for a request from every engine's current snapshot."""


def first_engine(request: ReplayRequest, engines: Sequence[EngineSnapshot]) -> int:
    return 0


def least_loaded(request: ReplayRequest, engines: Sequence[EngineSnapshot]) -> int:
    """Fewest running + waiting requests, lowest index on ties."""
    loads = [e.num_running + e.num_waiting for e in engines]
    return loads.index(min(loads))


class VirtualEngine:
    """An engine in virtual time: the core, its in-flight step and what it finished."""

    def __init__(
        self, profile: Profile, config: EngineConfig, *, fast_forward: bool = True
    ) -> None:
        self.profile = profile
        self.fast_forward = fast_forward
        self.config = config
        self.max_model_len = profile.max_len(config)
        self.core = EngineCore(
            config,
            num_blocks=profile.num_blocks(config),
            max_model_len=self.max_model_len,
            step_time=profile.step_time,
        )
        self.step: Step | None = None
        self.records: list[RequestRecord] = []

    def accepts(self, request: ReplayRequest) -> bool:
        """vLLM refuses (400) a prompt that leaves no room for one output token."""
        return 0 < request.prompt_tokens < self.max_model_len

    def submit(self, request: ReplayRequest, now: float, *, priority: int = 0) -> None:
        """Queue ``request`` now; ``priority`` (lower first) matters only under the
        engine's ``priority`` scheduling policy."""
        room = self.max_model_len - request.prompt_tokens
        output = max(1, min(request.output_tokens, room))
        reason: FinishReason = "length" if output < request.output_tokens else "stop"
        hashes = request.block_hashes
        if hashes is None and request.trace_block_ids is not None:
            hashes = trace_block_hashes(
                request.trace_block_ids,
                request.prompt_tokens,
                self.config.block_size,
                request.trace_block_tokens,
            )
        self.core.add_request(
            CoreRequest(
                request.request_id, request.prompt_tokens, output, reason, hashes, priority
            ),
            now,
        )

    def finish_step(self) -> None:
        assert self.step is not None
        output = self.core.complete_step(self.step, emissions=False)
        self.records.extend(output.finished)
        self.step = None

    def start_step(self, now: float, horizon: float = float("inf")) -> Step | None:
        """Start the next step at ``now`` (after skipping, when allowed, the decode
        steps that end before ``horizon``, the next moment anything else can happen)."""
        if self.step is None:
            if self.fast_forward:
                now = self.core.fast_forward(now, horizon)
            self.step = self.core.begin_step(now)
        return self.step


@dataclass(frozen=True)
class ReplayReport:
    """Finished requests (in finish order), which engine served each, the requests
    refused for length, and each engine's final counters."""

    records: list[RequestRecord]
    engine_of: dict[str, int]
    rejected: list[ReplayRequest]
    snapshots: list[EngineSnapshot]
    num_steps: int = field(default=0)


def run_fleet(
    engines: Sequence[VirtualEngine],
    requests: Iterable[ReplayRequest],
    route: Router = least_loaded,
    on_finished: Callable[[int, Sequence[RequestRecord]], None] | None = None,
) -> ReplayReport:
    """Replay ``requests`` (any order; sorted by arrival here) over ``engines``;
    ``on_finished(engine index, records)`` hears of requests as they finish."""
    arrivals = sorted(requests, key=lambda r: r.arrival_s)
    ends: list[tuple[float, int, int]] = []  # (step end, tie-breaker, engine index)
    engine_of: dict[str, int] = {}
    rejected: list[ReplayRequest] = []
    seq = 0
    i, n = 0, len(arrivals)
    inf = float("inf")
    while i < n or ends:
        now = min(arrivals[i].arrival_s if i < n else inf, ends[0][0] if ends else inf)
        touched: set[int] = set()
        while ends and ends[0][0] <= now:
            index = heapq.heappop(ends)[2]
            done = len(engines[index].records)
            engines[index].finish_step()
            if on_finished is not None and len(engines[index].records) > done:
                on_finished(index, engines[index].records[done:])
            touched.add(index)
        while i < n and arrivals[i].arrival_s <= now:
            request = arrivals[i]
            i += 1
            index = route(request, [e.core.snapshot() for e in engines])
            if not engines[index].accepts(request):
                rejected.append(request)
                continue
            engines[index].submit(request, now)
            engine_of[request.request_id] = index
            touched.add(index)
        for index in sorted(touched):
            engine = engines[index]
            horizon = arrivals[i].arrival_s if i < n else inf
            if engine.step is None and (step := engine.start_step(now, horizon)) is not None:
                seq += 1
                heapq.heappush(ends, (step.ends_at, seq, index))
    records = [r for e in engines for r in e.records]
    records.sort(key=lambda r: r.finished_at)
    return ReplayReport(
        records=records,
        engine_of=engine_of,
        rejected=rejected,
        snapshots=[e.core.snapshot() for e in engines],
        num_steps=sum(e.core.num_steps for e in engines),
    )


def simulate(
    requests: Iterable[ReplayRequest],
    profile: Profile,
    config: EngineConfig | None = None,
    *,
    fast_forward: bool = True,
) -> ReplayReport:
    """Replay ``requests`` on one engine of ``profile`` in virtual time."""
    engine = VirtualEngine(profile, config or EngineConfig(), fast_forward=fast_forward)
    return run_fleet([engine], requests, first_engine)


def run_closed_loop(
    engine: VirtualEngine, requests: Iterable[ReplayRequest], concurrency: int
) -> ReplayReport:
    """Keep ``concurrency`` requests in flight (like ``vllm bench serve
    --max-concurrency``): the first ones start at 0, each later one the moment an
    earlier one finishes; ``arrival_s`` is ignored."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    pending = list(requests)
    pending.reverse()
    rejected: list[ReplayRequest] = []
    now = 0.0

    def send(count: int) -> None:
        while count > 0 and pending:
            request = pending.pop()
            if engine.accepts(request):
                engine.submit(request, now)
                count -= 1
            else:
                rejected.append(request)

    send(concurrency)
    while engine.start_step(now) is not None:
        assert engine.step is not None
        now = engine.step.ends_at
        before = len(engine.records)
        engine.finish_step()
        send(len(engine.records) - before)
    return ReplayReport(
        records=list(engine.records),
        engine_of=dict.fromkeys((r.request_id for r in engine.records), 0),
        rejected=rejected,
        snapshots=[engine.core.snapshot()],
        num_steps=engine.core.num_steps,
    )
