"""The gateway side of admission: holds requests while the pool is saturated or asleep.

Decisions (saturation, ordering, shedding) are pure and live in
:mod:`scheduler.admission`; this adapter owns the waiting. Room is counted per priority
class: a class may run ``priority_headroom`` more requests per worker than
``max_running_per_worker``, so urgent requests find free engine slots that the others are
held out of. A request enters at once while its class has room in the model's pool and
nobody of its priority or above is held; otherwise it takes a ticket and waits to be
released, one request per completion and, after each probe round, one per worker with room.
The head of the queue is released only while its own class has room. A client that leaves
while queued gives up its place. With ``max_prefill_tokens_per_worker`` set, a worker is
also full while the prompt tokens we sent it without a first token back reach that bound,
and each first token releases a held request too.

With no healthy worker for the model at all, a model scaled to zero
(``admission.scale_to_zero``) holds the request until a probe finds a worker healthy or its
hold timeout passes (503 ``model_scaled_to_zero``); the held count is exported per model, so
the autoscaler starts a replica. Any other model gets routing's immediate 503.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from gateway.admission_settings import AdmissionSettings
from gateway.errors import GatewayError
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from scheduler.admission import AdmissionQueue, SaturationPolicy, Ticket, pool_saturation
from scheduler.pool import EndpointPool
from scheduler.prefill import over_prefill_bound


class Overloaded(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "overloaded"


class ScaledToZero(GatewayError):
    """A model scaled to zero got no ready replica within its hold timeout."""

    status = 503
    type = "server_error"
    code = "model_scaled_to_zero"


class AdmissionGate:
    def __init__(
        self,
        settings: GatewaySettings,
        pool: EndpointPool,
        metrics: GatewayMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._settings: AdmissionSettings = settings.admission
        self._zero = self._settings.scale_to_zero
        self._max_age_s = settings.discovery.stale_after_s
        self._pool = pool
        self._metrics = metrics
        self._clock = clock
        self._policy = SaturationPolicy(
            queue_threshold=self._settings.queue_threshold,
            kv_threshold=self._settings.kv_threshold,
            max_running=self._settings.max_running_per_worker,
            priority_headroom=tuple(sorted(self._settings.priority_headroom.items())),
            slots_only_at_or_above=self._settings.slots_only_at_or_above,
            max_prefill_tokens=self._settings.max_prefill_tokens_per_worker,
        )
        self._policies = {
            p: self._policy.for_priority(p) for p in self._settings.priorities.values()
        }
        """The policy each priority class is admitted under, built once."""
        # What fills a worker by the policy: the most held requests one new replica takes.
        self._fill_per_worker = self._settings.max_running_per_worker or math.ceil(
            self._settings.queue_threshold
        )
        self._queues: dict[str, AdmissionQueue] = {}
        self._asleep: dict[str, AdmissionQueue] = {}
        """Per model scaled to zero: requests held for its first replica, released first."""
        self._waiters: dict[Ticket, asyncio.Future[None]] = {}

    def saturation(self, model: str, priority: int) -> float:
        """How full ``model``'s pool is for a request of ``priority`` (>= 1: no room)."""
        return pool_saturation(
            self._pool.snapshot,
            self._pool.in_flight,
            model,
            self._clock(),
            self._max_age_s,
            self._policy_for(priority),
            self._pool.prefill_tokens,
        )

    def prefill_full(self, priority: int) -> frozenset[str]:
        """The workers whose prefill backlog is at the bound for a request of ``priority``:
        routing skips them (none when no bound is set)."""
        return over_prefill_bound(self._pool.prefill_tokens, self._policy_for(priority))

    def prefill_done(self) -> None:
        """A worker's prefill backlog shrank (a first token came back, or the request
        ended): with a bound set, that may be the room a held request waits for."""
        if self._policy.max_prefill_tokens is None:
            return
        for model in dict.fromkeys([*self._queues, *self._asleep]):
            self.wake(model, limit=1)

    def _policy_for(self, priority: int) -> SaturationPolicy:
        return self._policies.get(priority) or self._policy.for_priority(priority)

    def queued(self) -> dict[str, int]:
        """Requests held per model; models scaled to zero are listed even at zero."""
        counts = dict.fromkeys(self._zero.models, 0)
        for queues in (self._queues, self._asleep):
            for model, queue in queues.items():
                counts[model] = counts.get(model, 0) + len(queue)
        return counts

    def has_healthy_worker(self, model: str) -> bool:
        return any(e.healthy and model in e.models for e in self._pool.snapshot.endpoints)

    async def enter(self, model: str, priority: int, tenant: str) -> None:
        """Return when the request may be dispatched; raise :class:`Overloaded` to shed it,
        :class:`ScaledToZero` when no replica of a model scaled to zero came in time."""
        if not self._settings.enabled:
            return
        queue = self._queue(model)
        if (
            not queue.waiting_at_or_above(priority)
            and not self._asleep.get(model)
            and self.saturation(model, priority) < 1.0
        ):
            return
        if not self.has_healthy_worker(model):
            hold_s = self._zero.hold_timeout(model)
            if hold_s is not None:
                await self._hold_for_replica(model, priority, tenant, hold_s)
            return  # otherwise nothing to wait for: routing answers 503 at once
        now = self._clock()
        if priority <= self._settings.shed_at_or_below:
            self._shed("sheddable", 1.0)
        ticket = Ticket(priority=priority, tenant=tenant, arrived=now)
        shed = queue.offer(ticket, now)
        if shed is not None:
            self._shed(shed.reason, shed.retry_after_s)
        if not await self._wait(model, queue, ticket, self._settings.max_wait_s):
            self._shed("queue_timeout", queue.retry_after(self._clock()))

    async def _hold_for_replica(
        self, model: str, priority: int, tenant: str, hold_s: float
    ) -> None:
        """Hold until a worker for ``model`` is healthy and has room. Nothing is shed for
        priority or predicted wait here: the pool is asleep, not overloaded."""
        queue = self._asleep.get(model)
        if queue is None:
            queue = self._asleep[model] = AdmissionQueue(
                max_queue=self._settings.max_queue, ttft_slo_s=math.inf
            )
        now = self._clock()
        ticket = Ticket(priority=priority, tenant=tenant, arrived=now)
        shed = queue.offer(ticket, now)
        if shed is not None:
            self._shed(shed.reason, self._zero.retry_after_s)
        if not await self._wait(model, queue, ticket, hold_s):
            self._metrics.shed("scale_to_zero_timeout")
            retry = self._zero.retry_after_s
            raise ScaledToZero(
                f"The model `{model}` is scaled to zero and no replica became ready within "
                f"{hold_s:g}s; one is being started, retry after {retry}s.",
                headers={"Retry-After": str(retry)},
            )

    async def _wait(
        self, model: str, queue: AdmissionQueue, ticket: Ticket, timeout_s: float
    ) -> bool:
        """Wait for ``ticket`` (already in ``queue``) to be released: True when it was,
        False when ``timeout_s`` passed first. It leaves the queue either way, also when
        the waiting task is cancelled (its client left)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = waiter
        self.wake(model, limit=1)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(ticket, None)
            queue.remove(ticket)
            self._metrics.queue_wait(self._clock() - ticket.arrived)
        return True

    def completed(self, model: str) -> None:
        """A request for ``model`` finished: a slot may have freed."""
        queue = self._queues.get(model)
        if queue is not None:
            queue.completed(self._clock())
            self.wake(model, limit=1)

    def wake_all(self) -> None:
        """After a probe round: release up to one waiter per worker with room, and the
        requests held for a model's first replicas up to what fills them."""
        workers = max(1, len(self._pool.snapshot.endpoints))
        for model in dict.fromkeys([*self._queues, *self._asleep]):
            limit = workers
            if self._asleep.get(model):
                serving = sum(
                    1 for e in self._pool.snapshot.endpoints if e.healthy and model in e.models
                )
                limit = max(limit, serving * self._fill_per_worker)
            self.wake(model, limit=limit)

    def wake(self, model: str, *, limit: int) -> None:
        """Release up to ``limit`` held requests, in queue order, while the head's own class
        has room. Headroom grows with priority, so when the head has none, nobody behind it
        (of its priority or lower) has any either."""
        released = 0
        while released < limit:
            queue = self._next_queue(model)
            head = queue.peek() if queue is not None else None
            if queue is None or head is None or self.saturation(model, head.priority) >= 1.0:
                break
            ticket = queue.pop()
            waiter = self._waiters.get(ticket) if ticket is not None else None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
                released += 1

    def _next_queue(self, model: str) -> AdmissionQueue | None:
        """The queue to release from: requests held for a first replica go first."""
        for queues in (self._asleep, self._queues):
            queue = queues.get(model)
            if queue:
                return queue
        return None

    def _queue(self, model: str) -> AdmissionQueue:
        queue = self._queues.get(model)
        if queue is None:
            queue = self._queues[model] = AdmissionQueue(
                max_queue=self._settings.max_queue, ttft_slo_s=self._settings.ttft_slo_s
            )
        return queue

    def _shed(self, reason: str, retry_after_s: float) -> None:
        self._metrics.shed(reason)
        raise Overloaded(
            f"The service is overloaded ({reason.replace('_', ' ')}); retry after "
            f"{retry_after_s:g}s.",
            headers={"Retry-After": str(max(1, round(retry_after_s)))},
        )
