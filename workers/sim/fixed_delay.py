"""An engine where every running sequence gets its first token ``ttft`` after admission
and each later token ``token_delay`` after the previous one, independent of load.

Admission is the only interaction between requests: at most ``max_num_seqs`` run at once
and the rest wait in arrival order, like vLLM's scheduler with a full batch. State changes
(admission, finish, abort) happen synchronously inside ``submit``/``abort``/iteration, so
``snapshot()`` is always exact and tests need no sleeps.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass

from workers.sim.clock import Clock
from workers.sim.engine import (
    EngineObserver,
    EngineSnapshot,
    FinishReason,
    GenerationRequest,
    RequestRecord,
    TokenChunk,
    plan_output,
)

# With zero delays a long output never awaits anything; hand the loop back this often.
_YIELD_EVERY_TOKENS = 32


@dataclass(frozen=True, slots=True)
class FixedDelayConfig:
    ttft_s: float = 0.0
    token_delay_s: float = 0.0
    max_num_seqs: int = 256
    natural_tokens: int = 64
    max_model_len: int = 8192

    def __post_init__(self) -> None:
        if self.ttft_s < 0 or self.token_delay_s < 0:
            raise ValueError("delays must be >= 0")
        if self.max_num_seqs < 1 or self.natural_tokens < 1 or self.max_model_len < 2:
            raise ValueError("max_num_seqs, natural_tokens must be >= 1, max_model_len >= 2")


class _State(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class _Sequence:
    __slots__ = (
        "admitted",
        "arrived_at",
        "finish_reason",
        "first_token_at",
        "last_token_at",
        "num_generated",
        "num_tokens",
        "planned_reason",
        "request",
        "scheduled_at",
        "state",
    )

    def __init__(self, request: GenerationRequest, num_tokens: int, reason: FinishReason) -> None:
        self.request = request
        self.num_tokens = num_tokens
        self.planned_reason: FinishReason = reason
        self.state = _State.WAITING
        self.arrived_at = 0.0
        self.scheduled_at: float | None = None
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.num_generated = 0
        self.finish_reason: FinishReason | None = None
        self.admitted: asyncio.Future[None] | None = None


class FixedDelayEngine:
    """Implements ``workers.sim.engine.Engine`` with fixed per-sequence delays."""

    def __init__(
        self,
        config: FixedDelayConfig,
        *,
        clock: Clock,
        observer: EngineObserver | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._observer = observer
        self._running = 0
        self._waiting: deque[_Sequence] = deque()  # aborted entries are skipped lazily
        self._num_waiting = 0
        self._prompt_tokens_total = 0
        self._generation_tokens_total = 0
        self._prefix_cache_queries_total = 0

    @property
    def config(self) -> FixedDelayConfig:
        return self._config

    @property
    def prefix_block_size(self) -> int | None:
        """None: timing here never depends on what the prompt says."""
        return None

    def submit(self, request: GenerationRequest) -> FixedDelayStream:
        cfg = self._config
        if not 0 < request.prompt_tokens < cfg.max_model_len:
            raise ValueError(f"prompt_tokens must be in [1, {cfg.max_model_len - 1}]")
        if request.max_tokens is not None and request.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        plan = plan_output(
            natural_tokens=cfg.natural_tokens,
            max_tokens=request.max_tokens,
            ignore_eos=request.ignore_eos,
            room=cfg.max_model_len - request.prompt_tokens,
        )
        seq = _Sequence(request, plan.num_tokens, plan.finish_reason)
        seq.arrived_at = self._clock.now()
        if self._running < cfg.max_num_seqs and not self._num_waiting:
            self._admit(seq)
        else:
            self._waiting.append(seq)
            self._num_waiting += 1
        return FixedDelayStream(self, seq)

    def snapshot(self) -> EngineSnapshot:
        return EngineSnapshot(
            num_running=self._running,
            num_waiting=self._num_waiting,
            kv_cache_usage=self._running / self._config.max_num_seqs,
            prompt_tokens_total=self._prompt_tokens_total,
            generation_tokens_total=self._generation_tokens_total,
            num_preemptions_total=0,
            prefix_cache_queries_total=self._prefix_cache_queries_total,
            prefix_cache_hits_total=0,
        )

    # -- transitions -----------------------------------------------------------------

    def _admit(self, seq: _Sequence) -> None:
        seq.state = _State.RUNNING
        seq.scheduled_at = self._clock.now()
        self._running += 1
        self._prefix_cache_queries_total += seq.request.prompt_tokens
        if seq.admitted is not None and not seq.admitted.done():
            seq.admitted.set_result(None)

    def _admit_waiting(self) -> None:
        while self._waiting and self._running < self._config.max_num_seqs:
            seq = self._waiting.popleft()
            if seq.state is _State.WAITING:
                self._num_waiting -= 1
                self._admit(seq)

    def _emit(self, seq: _Sequence, count: int, now: float) -> None:
        if seq.first_token_at is None:
            seq.first_token_at = now
            self._prompt_tokens_total += seq.request.prompt_tokens
        seq.last_token_at = now
        seq.num_generated += count
        self._generation_tokens_total += count

    def _finish(self, seq: _Sequence, reason: FinishReason) -> None:
        if seq.state is _State.FINISHED:
            return
        was = seq.state
        seq.state = _State.FINISHED
        seq.finish_reason = reason
        if was is _State.RUNNING:
            self._running -= 1
            self._admit_waiting()
        else:
            self._num_waiting -= 1
        if seq.admitted is not None and not seq.admitted.done():
            seq.admitted.set_result(None)
        if self._observer is not None:
            self._observer.request_finished(
                RequestRecord(
                    request_id=seq.request.request_id,
                    prompt_tokens=seq.request.prompt_tokens,
                    num_generated=seq.num_generated,
                    finish_reason=reason,
                    arrived_at=seq.arrived_at,
                    scheduled_at=seq.scheduled_at,
                    first_token_at=seq.first_token_at,
                    last_token_at=seq.last_token_at,
                    finished_at=self._clock.now(),
                )
            )

    # -- used by the stream ----------------------------------------------------------

    async def _wait_admitted(self, seq: _Sequence) -> bool:
        """Wait out the queue; False when the request was aborted meanwhile."""
        if seq.state is _State.WAITING:
            if seq.admitted is None:
                seq.admitted = asyncio.get_running_loop().create_future()
            await seq.admitted
        return seq.state is _State.RUNNING

    def _due(self, seq: _Sequence, index: int) -> float:
        """When token ``index`` (0-based) is ready."""
        assert seq.scheduled_at is not None
        cfg = self._config
        return seq.scheduled_at + cfg.ttft_s + index * cfg.token_delay_s


class FixedDelayStream:
    """The ``GenerationStream`` of one request on a ``FixedDelayEngine``."""

    __slots__ = ("_engine", "_seq")

    def __init__(self, engine: FixedDelayEngine, seq: _Sequence) -> None:
        self._engine = engine
        self._seq = seq

    @property
    def request_id(self) -> str:
        return self._seq.request.request_id

    @property
    def phase(self) -> str:
        """``"waiting"``, ``"running"`` or ``"finished"``."""
        return self._seq.state.value

    @property
    def num_tokens(self) -> int:
        """Planned output length (fewer are produced if aborted)."""
        return self._seq.num_tokens

    def __aiter__(self) -> FixedDelayStream:
        return self

    async def __anext__(self) -> TokenChunk:
        seq, engine = self._seq, self._engine
        if seq.state is not _State.RUNNING and not await engine._wait_admitted(seq):
            raise StopAsyncIteration
        index = seq.num_generated
        clock = engine._clock
        now = clock.now()
        due = engine._due(seq, index)
        if due > now:
            await clock.sleep_until(due)
            if seq.state is not _State.RUNNING:
                raise StopAsyncIteration
            now = clock.now()
        elif index % _YIELD_EVERY_TOKENS == _YIELD_EVERY_TOKENS - 1:
            await asyncio.sleep(0)
            if seq.state is not _State.RUNNING:
                raise StopAsyncIteration
        engine._emit(seq, 1, now)
        if seq.num_generated < seq.num_tokens:
            return TokenChunk(index, 1)
        engine._finish(seq, seq.planned_reason)
        return TokenChunk(index, 1, seq.planned_reason)

    async def collect(self) -> TokenChunk:
        """Wait for the remaining output in one go (no per-token wake-ups)."""
        seq, engine = self._seq, self._engine
        start = seq.num_generated
        if seq.state is not _State.RUNNING and not await engine._wait_admitted(seq):
            return TokenChunk(start, 0, seq.finish_reason or "abort")
        clock = engine._clock
        # Two wake-ups at most: the first token (so TTFT is exact) and the last one.
        for index in (seq.num_generated, seq.num_tokens - 1):
            if index < seq.num_generated:
                continue
            await clock.sleep_until(engine._due(seq, index))
            if seq.state is not _State.RUNNING:
                break
            engine._emit(seq, index + 1 - seq.num_generated, clock.now())
        if seq.state is _State.RUNNING:
            engine._finish(seq, seq.planned_reason)
        return TokenChunk(start, seq.num_generated - start, seq.finish_reason)

    def abort(self) -> None:
        self._engine._finish(self._seq, "abort")
