"""The per-request state the engine core keeps, and what one step schedules and yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from workers.sim.engine import FinishReason, RequestRecord
from workers.sim.engine_config import CoreRequest
from workers.sim.step_time import BatchShape

WAITING, RUNNING, DONE = 0, 1, 2  # SeqState.state


class Emission(NamedTuple):
    """A request produced output token ``num_generated - 1`` at the end of a step."""

    request_id: str
    num_generated: int
    finish_reason: FinishReason | None


@dataclass(frozen=True, slots=True)
class StepOutput:
    emissions: list[Emission]
    finished: list[RequestRecord]


class SeqState:
    """One request inside the core (mutable; only ``EngineCore`` changes it)."""

    __slots__ = (
        "arrived_at",
        "blocks",
        "cached_tokens",
        "finish_reason",
        "first_token_at",
        "hashes",
        "last_token_at",
        "max_output",
        "num_computed",
        "num_hashed",
        "num_output",
        "num_preemptions",
        "priority",
        "prompt_tokens",
        "rid",
        "salt",
        "scheduled_at",
        "state",
    )

    def __init__(self, request: CoreRequest, salt: int, now: float) -> None:
        self.rid = request.request_id
        self.prompt_tokens = request.prompt_tokens
        self.max_output = request.output_tokens
        self.finish_reason: FinishReason = request.finish_reason
        self.hashes = list(request.block_hashes or ())
        self.salt = salt
        self.priority = request.priority
        self.arrived_at = now
        self.state = WAITING
        self.num_computed = 0
        self.num_output = 0
        self.num_hashed = 0
        self.blocks: list[int] = []
        self.scheduled_at: float | None = None
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.cached_tokens = -1  # prefix-cache hit at first admission; -1 before it
        self.num_preemptions = 0


@dataclass(slots=True)
class Step:
    """A scheduled batch, in flight from ``started_at`` to ``ends_at``."""

    started_at: float
    ends_at: float
    batch: BatchShape
    scheduled: list[tuple[SeqState, int]]
    num_preempted: int
