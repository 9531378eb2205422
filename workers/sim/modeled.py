"""The batching model in real time: an ``EngineCore`` stepped on a ``Clock``.

``ModeledEngine`` implements the ``Engine`` seam for the HTTP server. One background task
runs steps back to back while there is work: it asks the core for the next step, sleeps
until the step's end, applies it, and hands each request's new tokens to its stream.
Step boundaries are kept on the model's own timeline (each step starts when the previous
one ended), and sleeps target absolute deadlines, so timer jitter does not accumulate;
only when the event loop falls far behind does the timeline resynchronise to the clock.

Submissions and aborts change the core at once, between steps, so ``snapshot()`` is
always current and tests need no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from workers.sim.clock import Clock
from workers.sim.core import EngineCore
from workers.sim.engine import (
    EngineObserver,
    EngineSnapshot,
    FinishReason,
    GenerationRequest,
    TokenChunk,
    plan_output,
)
from workers.sim.engine_config import CoreRequest
from workers.sim.sequence import Emission

# Fall back to the clock when the loop is this far behind the modelled timeline.
_RESYNC_AFTER_S = 0.05
# With a clock that never suspends (virtual time in tests), give the loop back this often.
_YIELD_EVERY_STEPS = 64


class _Channel:
    """Where the engine task leaves a request's progress for its stream."""

    __slots__ = ("_waiter", "done", "finish_reason", "generated")

    def __init__(self) -> None:
        self.generated = 0
        self.finish_reason: FinishReason | None = None
        self.done = False
        self._waiter: asyncio.Future[None] | None = None

    def publish(self, generated: int, finish_reason: FinishReason | None) -> None:
        self.generated = generated
        if finish_reason is not None:
            self.finish_reason = finish_reason
            self.done = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def changed(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter


class ModeledEngine:
    """``Engine`` whose timing comes from ``EngineCore`` and its step-time model."""

    def __init__(
        self,
        core: EngineCore,
        *,
        clock: Clock,
        natural_tokens: int,
        observer: EngineObserver | None = None,
    ) -> None:
        self.core = core
        self._clock = clock
        self._natural_tokens = natural_tokens
        self._observer = observer
        self._channels: dict[str, _Channel] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def prefix_block_size(self) -> int | None:
        config = self.core.config
        return config.block_size if config.enable_prefix_caching else None

    def snapshot(self) -> EngineSnapshot:
        return self.core.snapshot()

    def submit(self, request: GenerationRequest) -> ModeledStream:
        if request.max_tokens is not None and request.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        plan = plan_output(
            natural_tokens=self._natural_tokens,
            max_tokens=request.max_tokens,
            ignore_eos=request.ignore_eos,
            room=self.core.max_model_len - request.prompt_tokens,
        )
        self.core.add_request(
            CoreRequest(
                request.request_id,
                request.prompt_tokens,
                plan.num_tokens,
                plan.finish_reason,
                request.block_hashes,
                request.priority,
            ),
            self._clock.now(),
        )
        channel = self._channels[request.request_id] = _Channel()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return ModeledStream(self, request.request_id, channel)

    def abort(self, request_id: str) -> None:
        record = self.core.abort_request(request_id, self._clock.now())
        channel = self._channels.pop(request_id, None)
        if record is None:
            return
        if channel is not None:
            channel.publish(channel.generated, "abort")
        if self._observer is not None:
            self._observer.request_finished(record)

    async def _run(self) -> None:
        clock, core = self._clock, self.core
        start = clock.now()
        steps = 0
        while core.has_work:
            step = core.begin_step(start)
            if step is None:
                break
            await clock.sleep_until(step.ends_at)
            output = core.complete_step(step)
            self._deliver(output.emissions)
            if self._observer is not None:
                for record in output.finished:
                    self._observer.request_finished(record)
                self._observer.step_finished(step.batch.num_tokens)
            now = clock.now()
            start = now if now - step.ends_at > _RESYNC_AFTER_S else step.ends_at
            steps += 1
            if steps % _YIELD_EVERY_STEPS == 0:
                await asyncio.sleep(0)

    def _deliver(self, emissions: list[Emission]) -> None:
        channels = self._channels
        for request_id, generated, finish_reason in emissions:
            channel = channels.get(request_id)
            if channel is None:
                continue
            if finish_reason is not None:
                del channels[request_id]
            channel.publish(generated, finish_reason)


class ModeledStream:
    """The ``GenerationStream`` of one request on a ``ModeledEngine``; when the reader
    falls behind, the tokens produced meanwhile come as one chunk."""

    __slots__ = ("_channel", "_engine", "_request_id", "_sent")

    def __init__(self, engine: ModeledEngine, request_id: str, channel: _Channel) -> None:
        self._engine = engine
        self._request_id = request_id
        self._channel = channel
        self._sent = 0

    @property
    def request_id(self) -> str:
        return self._request_id

    @property
    def finished(self) -> bool:
        return self._channel.done

    def __aiter__(self) -> AsyncIterator[TokenChunk]:
        return self

    async def __anext__(self) -> TokenChunk:
        channel = self._channel
        while channel.generated == self._sent and not channel.done:
            await channel.changed()
        if channel.generated == self._sent or channel.finish_reason == "abort":
            raise StopAsyncIteration
        start, self._sent = self._sent, channel.generated
        return TokenChunk(start, channel.generated - start, channel.finish_reason)

    async def collect(self) -> TokenChunk:
        channel = self._channel
        start = self._sent
        while not channel.done:
            await channel.changed()
        self._sent = channel.generated
        return TokenChunk(start, channel.generated - start, channel.finish_reason)

    def abort(self) -> None:
        if not self._channel.done:
            self._engine.abort(self._request_id)
