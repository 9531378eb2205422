"""What a client sees of a worker: the engine model plus the API server in front of it.

The engine model (``core``) times steps; a client also waits for the API server to parse
its request and hand it to the engine, and for each output to come back through it. On
the 2-core CPU worker that path is several milliseconds, comparable to a step, and it
grows with the number of requests being streamed, because the API server shares the
cores with the engine. ``FrontendLatency`` is that delay, charged once per request
between sending it and the engine seeing it (only the sum of the way in and the way out
matters to TTFT and to a closed loop, so all of it is put on the way in). The API server
is one event loop, so requests sent together are handled one after another.

``closed_loop_timings`` runs a closed loop in virtual time, like
``workers.sim.replay.run_closed_loop``, but records every token's time as the client
would see it, so inter-token latencies can be compared with a real worker's.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from workers.sim.core import EngineCore
from workers.sim.engine_config import CoreRequest, EngineConfig
from workers.sim.step_time import StepTimeModel


class FrontendLatency(BaseModel):
    """Time from a client sending a request to the engine scheduling it, beyond the
    engine's own queue: ``base_s + per_running_s * (requests running then)`` once the
    API server is done with the requests sent before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    per_running_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    def seconds(self, running: int) -> float:
        return self.base_s + self.per_running_s * running


@dataclass(frozen=True, slots=True)
class ClientTiming:
    """One request as a client saw it: when it was sent, when each token arrived."""

    sent: float
    token_times: tuple[float, ...]

    @property
    def ttft(self) -> float:
        return self.token_times[0] - self.sent

    def gaps(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.token_times)]


def closed_loop_timings(
    shapes: Sequence[tuple[int, int]],
    concurrency: int,
    *,
    config: EngineConfig,
    num_blocks: int,
    max_model_len: int,
    step_time: StepTimeModel,
    frontend: FrontendLatency | None = None,
) -> list[ClientTiming]:
    """Keep ``concurrency`` of the (prompt, output) ``shapes`` in flight, in order, each
    sent the moment an earlier one's last token arrives; return their timings (in the
    order sent). Prompts share no prefix; outputs have exactly the lengths given."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    frontend = frontend or FrontendLatency()
    core = EngineCore(
        config, num_blocks=num_blocks, max_model_len=max_model_len, step_time=step_time
    )
    sent: list[float] = []
    tokens: list[list[float]] = []
    arrivals: list[tuple[float, int]] = []  # (reaches the engine, index)
    now = 0.0
    frontend_free = 0.0  # when the API server is done with the requests sent so far

    def send(count: int) -> None:
        nonlocal frontend_free
        while count > 0 and len(sent) < len(shapes):
            index = len(sent)
            sent.append(now)
            tokens.append([])
            frontend_free = max(now, frontend_free) + frontend.seconds(core.num_running)
            heapq.heappush(arrivals, (frontend_free, index))
            count -= 1

    send(concurrency)
    while arrivals or core.has_work:
        while arrivals and arrivals[0][0] <= now:
            at, index = heapq.heappop(arrivals)
            prompt, output = shapes[index]
            core.add_request(CoreRequest(str(index), prompt, output, "length"), at)
        if not core.has_work:
            now = arrivals[0][0]
            continue
        step = core.begin_step(now)
        assert step is not None
        now = step.ends_at
        result = core.complete_step(step)
        for emission in result.emissions:
            tokens[int(emission.request_id)].append(now)
        send(len(result.finished))
    return [ClientTiming(s, tuple(t)) for s, t in zip(sent, tokens, strict=True)]
