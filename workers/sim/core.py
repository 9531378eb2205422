"""A step-able model of vLLM's V1 engine core: continuous batching over a paged KV cache.

``EngineCore`` owns the waiting queue, the running batch and the block pool, and nothing
else: no clock, no I/O, no asyncio. A driver asks it to ``begin_step(now)``, which
schedules the next batch the way vLLM's V1 scheduler does and says when the step ends
(from a ``StepTimeModel``); at that moment the driver calls ``complete_step``, which
applies the step's outputs. Requests may be added or aborted between those calls, as
they reach a real engine while the GPU runs. The real-time server (``modeled``) and the
virtual-time replay (``replay``) are two such drivers of the same object.

Scheduling, per step, with a budget of ``max_num_batched_tokens`` tokens:

1. Running requests, oldest first, each get what they still need (one token when
   decoding, the rest of the prompt when prefilling), cut to the remaining budget
   (chunked prefill). If the KV cache cannot hold a request's new tokens, a running
   request is preempted (its blocks freed, its progress dropped) and put back in the
   waiting queue, until the tokens fit: the most recently admitted one, first in the
   queue (``fcfs``), or the lowest priority, latest arrival, in its rank (``priority``).
2. Only if nothing was preempted, waiting requests are admitted in order (arrival, or
   (priority, arrival) under ``priority``; see ``workers.sim.waiting``) while the
   batch has fewer than ``max_num_seqs`` requests and budget remains. Each first
   reuses the longest cached chain of its block hashes (never the last token, which
   must be computed to sample), then needs blocks for the rest; the first one that
   does not fit stops admission.

A request whose computed tokens reach its known tokens samples one output token.
"""

from __future__ import annotations

import heapq

from workers.sim.engine import EngineSnapshot, FinishReason, RequestRecord
from workers.sim.engine_config import CoreRequest, EngineConfig
from workers.sim.kv_cache import BlockPool
from workers.sim.sequence import DONE, RUNNING, WAITING, Emission, SeqState, Step, StepOutput
from workers.sim.step_time import BatchShape, StepTimeModel
from workers.sim.waiting import preemption_victim, waiting_queue

# Mixed into the hashes of blocks only one request can have (output tokens, prompts
# given without hashes), so they never match another request's prompt.
_OWN_BLOCK_TAG = 0x5EED_B10C_0000_0001


class EngineCore:
    """One engine's scheduler state; see the module docstring for the policy."""

    def __init__(
        self, config: EngineConfig, *, num_blocks: int, max_model_len: int, step_time: StepTimeModel
    ) -> None:
        if num_blocks * config.block_size < max_model_len:
            raise ValueError(
                f"{num_blocks} KV blocks of {config.block_size} tokens cannot hold one "
                f"request of max_model_len={max_model_len} tokens"
            )
        self.config = config
        self.max_model_len = max_model_len
        self.pool = BlockPool(num_blocks)
        self._step_time = step_time
        self._bs = config.block_size
        self._caching = config.enable_prefix_caching
        self._policy = config.scheduling_policy
        self._waiting = waiting_queue(config.scheduling_policy)
        self._num_waiting = 0
        self._running: list[SeqState] = []
        self._by_id: dict[str, SeqState] = {}
        self._next_salt = 0
        self.step: Step | None = None
        self.num_steps = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.num_preemptions_total = 0
        self.prefix_queries_total = 0
        self.prefix_hits_total = 0

    # -- state -----------------------------------------------------------------------

    @property
    def has_work(self) -> bool:
        return bool(self._running) or self._num_waiting > 0

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return self._num_waiting

    def snapshot(self) -> EngineSnapshot:
        return EngineSnapshot(
            num_running=len(self._running),
            num_waiting=self._num_waiting,
            kv_cache_usage=self.pool.usage,
            prompt_tokens_total=self.prompt_tokens_total,
            generation_tokens_total=self.generation_tokens_total,
            num_preemptions_total=self.num_preemptions_total,
            prefix_cache_queries_total=self.prefix_queries_total,
            prefix_cache_hits_total=self.prefix_hits_total,
        )

    # -- requests --------------------------------------------------------------------

    def add_request(self, request: CoreRequest, now: float) -> None:
        """Queue a request; it is considered from the next ``begin_step``."""
        if request.request_id in self._by_id:
            raise ValueError(f"duplicate request id {request.request_id!r}")
        if not 0 < request.prompt_tokens < self.max_model_len:
            raise ValueError(f"prompt_tokens must be in [1, {self.max_model_len - 1}]")
        if not 0 < request.output_tokens <= self.max_model_len - request.prompt_tokens:
            raise ValueError("output_tokens must be >= 1 and fit in max_model_len")
        req = SeqState(request, self._next_salt, now)
        self._next_salt += 1
        self._by_id[req.rid] = req
        self._waiting.add(req)
        self._num_waiting += 1

    def abort_request(self, request_id: str, now: float) -> RequestRecord | None:
        """Drop a request at once, freeing its blocks; None if it already finished."""
        req = self._by_id.get(request_id)
        if req is None:
            return None
        if req.state == RUNNING:
            self._running.remove(req)
            self.pool.free(req.blocks)
            req.blocks = []
        else:
            self._num_waiting -= 1  # its queue entry is skipped when reached
        return self._finish(req, "abort", now)

    # -- steps -----------------------------------------------------------------------

    def begin_step(self, now: float) -> Step | None:
        """Schedule the next batch at ``now``; None when there is nothing to run."""
        if self.step is not None:
            raise RuntimeError("a step is already in flight")
        if not self.has_work:
            return None
        scheduled: list[tuple[SeqState, int]] = []
        budget = self.config.max_num_batched_tokens
        preempted = 0
        while True:
            budget, dropped = self._schedule_running(scheduled, budget)
            preempted += dropped
            if not dropped:
                self._schedule_waiting(scheduled, budget, now)
            if scheduled or not dropped:
                break
            # Only preemptions (a request preempted itself ahead of others, possible under
            # ``priority``): vLLM would run an empty step and schedule again; do it now.
        if not scheduled:
            raise RuntimeError("engine has work but scheduled nothing")
        batch = self._shape(scheduled)
        step = Step(now, now + self._step_time.step_seconds(batch), batch, scheduled, preempted)
        self.step = step
        return step

    def complete_step(self, step: Step, *, emissions: bool = True) -> StepOutput:
        """Apply the outputs of ``step`` (the one in flight) at its end time."""
        if step is not self.step:
            raise RuntimeError("that step is not the one in flight")
        self.step = None
        self.num_steps += 1
        now = step.ends_at
        emitted: list[Emission] = []
        finished: list[RequestRecord] = []
        any_done = False
        for req, num_new in step.scheduled:
            if req.state != RUNNING:
                continue  # aborted (or preempted) while the step ran
            req.num_computed += num_new
            if req.num_computed < req.prompt_tokens + req.num_output:
                continue  # a prefill chunk that samples nothing yet
            req.num_output += 1
            self.generation_tokens_total += 1
            if req.first_token_at is None:
                req.first_token_at = now
                self.prompt_tokens_total += req.prompt_tokens
            req.last_token_at = now
            if req.num_output >= req.max_output:
                self.pool.free(req.blocks)
                req.blocks = []
                finished.append(self._finish(req, req.finish_reason, now))
                any_done = True
                if emissions:
                    emitted.append(Emission(req.rid, req.num_output, req.finish_reason))
            elif emissions:
                emitted.append(Emission(req.rid, req.num_output, None))
        if any_done:
            self._running = [r for r in self._running if r.state == RUNNING]
        return StepOutput(emitted, finished)

    # -- scheduling ------------------------------------------------------------------

    def _schedule_running(
        self, scheduled: list[tuple[SeqState, int]], budget: int
    ) -> tuple[int, int]:
        running, pool, bs = self._running, self.pool, self._bs
        preempted = 0
        index = 0
        while index < len(running) and budget > 0:
            req = running[index]
            num_new = req.prompt_tokens + req.num_output - req.num_computed
            if num_new > budget:
                num_new = budget
            target = req.num_computed + num_new
            need = -(-target // bs) - len(req.blocks)
            if need > 0:
                while need > pool.num_free:
                    at = preemption_victim(running, self._policy)
                    victim = running.pop(at)
                    if at < index:  # already scheduled in this step: take it back out
                        slot = next(i for i, (r, _) in enumerate(scheduled) if r is victim)
                        budget += scheduled.pop(slot)[1]
                        index -= 1
                    self._preempt(victim)
                    preempted += 1
                    if victim is req:
                        break
                if req.state != RUNNING:
                    break
                req.blocks.extend(pool.allocate(need))
            if self._caching and target // bs > req.num_hashed:
                self._register_full_blocks(req, target // bs)
            scheduled.append((req, num_new))
            budget -= num_new
            index += 1
        return budget, preempted

    def _schedule_waiting(
        self, scheduled: list[tuple[SeqState, int]], budget: int, now: float
    ) -> None:
        waiting, running, pool, bs = self._waiting, self._running, self.pool, self._bs
        max_seqs = self.config.max_num_seqs
        while waiting and budget > 0 and len(running) < max_seqs:
            req = waiting.peek()
            if req.state != WAITING:
                waiting.pop()  # aborted while queued
                continue
            num_tokens = req.prompt_tokens + req.num_output
            hits: list[int] = []
            if self._caching:
                self._extend_hashes(req, (num_tokens - 1) // bs)
                hits = pool.longest_cached_prefix(req.hashes, (num_tokens - 1) // bs)
            num_hits = len(hits)
            computed = num_hits * bs
            num_new = min(num_tokens - computed, budget)
            need = -(-(computed + num_new) // bs) - num_hits
            if need > pool.num_free - pool.num_free_among(hits):
                break
            waiting.pop()
            self._num_waiting -= 1
            pool.touch(hits)
            hits.extend(pool.allocate(need))
            req.blocks = hits
            req.num_computed = computed
            req.num_hashed = num_hits
            if self._caching and (computed + num_new) // bs > req.num_hashed:
                self._register_full_blocks(req, (computed + num_new) // bs)
            if req.cached_tokens < 0:
                req.cached_tokens = computed
                req.scheduled_at = now if now > req.arrived_at else req.arrived_at
                if self._caching:
                    self.prefix_queries_total += num_tokens
                    self.prefix_hits_total += computed
            req.state = RUNNING
            running.append(req)
            scheduled.append((req, num_new))
            budget -= num_new

    def fast_forward(self, now: float, horizon: float) -> float:
        """Apply at once the pure-decode steps that would run back to back from ``now``
        and end by ``horizon``, stopping before any step that would finish a request,
        need more blocks than are free, or try to admit a waiting request; return when
        the last skipped step ended (``now`` if none).

        The outcome is exactly that of ``begin_step``/``complete_step`` for each of those
        steps (blocks are taken in the same order) without the per-request work per
        step, which is what makes replaying long outputs cheap. Virtual time only: the
        skipped steps produce no emissions.
        """
        running, pool, bs, config = self._running, self.pool, self._bs, self.config
        batch = len(running)
        if self.step is not None or not batch or batch > config.max_num_batched_tokens:
            return now
        admits = batch < config.max_num_seqs and batch < config.max_num_batched_tokens
        if self._num_waiting and admits:
            return now
        context, max_steps = 0, -1
        for req in running:
            if req.num_output == 0 or req.num_computed + 1 != req.prompt_tokens + req.num_output:
                return now  # still prefilling
            context += req.num_computed
            left = req.max_output - req.num_output - 1
            if max_steps < 0 or left < max_steps:
                max_steps = left
        # (step at which a request next needs a block, its index): popped in step order,
        # then running order, which is the order the real steps would allocate in.
        due = [(len(r.blocks) * bs - r.num_computed + 1, i) for i, r in enumerate(running)]
        heapq.heapify(due)
        step_seconds = self._step_time.step_seconds
        t, done = now, 0
        while done < max_steps:
            step = done + 1
            attended = context + step * batch
            end = t + step_seconds(BatchShape(batch, batch, 0, batch, attended, attended))
            if end > horizon:
                break
            needy: list[int] = []
            while due and due[0][0] == step:
                needy.append(heapq.heappop(due)[1])
            if len(needy) > pool.num_free:
                break  # the real step would preempt; leave it to begin_step
            for index in needy:
                running[index].blocks.extend(pool.allocate(1))
                heapq.heappush(due, (step + bs, index))
            t, done = end, step
        if done:
            for req in running:
                req.num_computed += done
                req.num_output += done
                req.last_token_at = t
                if self._caching and req.num_computed // bs > req.num_hashed:
                    self._register_full_blocks(req, req.num_computed // bs)
            self.generation_tokens_total += done * batch
            self.num_steps += done
        return t

    def _preempt(self, req: SeqState) -> None:
        """Recompute-style preemption: drop the KV cache, keep the tokens, requeue."""
        self.pool.free(req.blocks)
        req.blocks = []
        req.num_computed = 0
        req.num_hashed = 0
        req.state = WAITING
        req.num_preemptions += 1
        self.num_preemptions_total += 1
        self._waiting.requeue(req)
        self._num_waiting += 1

    def _extend_hashes(self, req: SeqState, num_blocks: int) -> None:
        """Give blocks beyond the prompt's hashed ones a hash only this request has."""
        hashes = req.hashes
        while len(hashes) < num_blocks:
            hashes.append(hash((_OWN_BLOCK_TAG, req.salt, len(hashes))))

    def _register_full_blocks(self, req: SeqState, num_full: int) -> None:
        self._extend_hashes(req, num_full)
        cache, blocks, hashes = self.pool.cache, req.blocks, req.hashes
        for i in range(req.num_hashed, num_full):
            cache(blocks[i], hashes[i])
        req.num_hashed = num_full

    def _shape(self, scheduled: list[tuple[SeqState, int]]) -> BatchShape:
        tokens = prefill = sampled = context = pairs = 0
        for req, num_new in scheduled:
            computed = req.num_computed
            known = req.prompt_tokens + req.num_output
            tokens += num_new
            if num_new > 1 or req.num_output == 0 or computed + 1 != known:
                prefill += num_new
            if computed + num_new == known:
                sampled += 1
            context += computed + num_new
            pairs += num_new * computed + num_new * (num_new + 1) // 2
        return BatchShape(len(scheduled), tokens, prefill, sampled, context, pairs)

    def _finish(self, req: SeqState, reason: FinishReason, now: float) -> RequestRecord:
        req.state = DONE
        del self._by_id[req.rid]
        return RequestRecord(
            request_id=req.rid,
            prompt_tokens=req.prompt_tokens,
            num_generated=req.num_output,
            finish_reason=reason,
            arrived_at=req.arrived_at,
            scheduled_at=req.scheduled_at,
            first_token_at=req.first_token_at,
            last_token_at=req.last_token_at,
            finished_at=now,
            cached_prompt_tokens=max(req.cached_tokens, 0),
            num_preemptions=req.num_preemptions,
        )
