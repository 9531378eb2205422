"""The engine seam: what the HTTP layer asks of a simulated inference engine.

The server turns a request into a ``GenerationRequest``, ``submit``s it and reads
``TokenChunk``s back from the returned ``GenerationStream``; it never decides *when* a
token appears. That is the engine's job, so a timing model can be swapped (fixed delays,
or the batching model of ``workers.sim.core`` driven in real time) without touching the
protocol code. Engines report finished requests to an ``EngineObserver`` (metrics) and
their instantaneous state as an ``EngineSnapshot``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One sequence to generate; lengths are already validated against the context."""

    request_id: str
    prompt_tokens: int
    max_tokens: int | None = None
    ignore_eos: bool = False
    # Chained hashes of the prompt's full KV blocks (see ``workers.sim.prefix``), at the
    # engine's ``prefix_block_size``; None when the engine does not model prefix caching.
    block_hashes: tuple[int, ...] | None = None
    # The request body's ``priority`` (lower runs earlier); engines that model vLLM's
    # ``priority`` scheduling policy order their waiting queue by it.
    priority: int = 0


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How many tokens a request will produce and why it will stop."""

    num_tokens: int
    finish_reason: FinishReason


def plan_output(
    *, natural_tokens: int, max_tokens: int | None, ignore_eos: bool, room: int
) -> OutputPlan:
    """Apply vLLM's stopping rules to a model that always emits EOS after ``natural_tokens``.

    ``room`` is what the context has left (max_model_len - prompt_tokens); vLLM uses it as
    the default ``max_tokens``. With ``ignore_eos`` generation runs to the limit.
    """
    limit = room if max_tokens is None else min(max_tokens, room)
    limit = max(limit, 0)
    if ignore_eos or natural_tokens > limit:
        return OutputPlan(limit, "length")
    return OutputPlan(natural_tokens, "stop")


class TokenChunk(NamedTuple):
    """Tokens ``start .. start + num_tokens - 1`` of the output; ``finish_reason`` on the last.

    A named tuple because one is made per streamed token.
    """

    start: int
    num_tokens: int
    finish_reason: FinishReason | None = None

    @property
    def end(self) -> int:
        return self.start + self.num_tokens


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """Scheduler state and cumulative counters, read at scrape time."""

    num_running: int
    num_waiting: int
    kv_cache_usage: float
    prompt_tokens_total: int
    generation_tokens_total: int
    num_preemptions_total: int
    prefix_cache_queries_total: int
    prefix_cache_hits_total: int


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Lifecycle timestamps of one finished (or aborted) request, in clock seconds.

    ``scheduled_at`` / ``first_token_at`` / ``last_token_at`` are ``None`` when the request
    ended before reaching that point.
    """

    request_id: str
    prompt_tokens: int
    num_generated: int
    finish_reason: FinishReason
    arrived_at: float
    scheduled_at: float | None
    first_token_at: float | None
    last_token_at: float | None
    finished_at: float
    cached_prompt_tokens: int = 0  # prompt tokens served from the prefix cache
    num_preemptions: int = 0


class EngineObserver(Protocol):
    """Told about each request exactly once, when it finishes for any reason, and (by
    engines that run in steps) about the number of tokens each step processed."""

    def request_finished(self, record: RequestRecord) -> None: ...

    def step_finished(self, num_tokens: int) -> None: ...


class GenerationStream(Protocol):
    """The output of one submitted request.

    Iterate it for tokens as they are produced (streaming), or ``await collect()`` to wait
    for the whole output at once. ``abort()`` frees the request's slot immediately and is
    a no-op once the request has finished; iteration then stops.
    """

    @property
    def request_id(self) -> str: ...

    def __aiter__(self) -> AsyncIterator[TokenChunk]: ...

    async def collect(self) -> TokenChunk: ...

    def abort(self) -> None: ...


class Engine(Protocol):
    """Accepts requests and reports its state; timing is entirely its own business.

    ``prefix_block_size`` is the KV block size at which the engine wants
    ``GenerationRequest.block_hashes``; None when it ignores prompt content.
    """

    @property
    def prefix_block_size(self) -> int | None: ...

    def submit(self, request: GenerationRequest) -> GenerationStream:
        """Queue the request now (so counts are current on return) and return its stream."""
        ...

    def snapshot(self) -> EngineSnapshot: ...
