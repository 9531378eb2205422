"""The gateway side of admission: holds requests while the pool is saturated.

Decisions (saturation, ordering, shedding) are pure and live in
:mod:`scheduler.admission`; this adapter owns the waiting. A request enters at once while
its model's pool has room and nobody is queued ahead; otherwise it takes a ticket and waits
to be released, one request per completion and, after each probe round, one per worker with
room. A client that leaves while queued gives up its place. With no healthy worker for the
model at all, nothing is held: routing answers 503 at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.errors import GatewayError
from gateway.metrics import GatewayMetrics
from gateway.settings import AdmissionSettings, GatewaySettings
from scheduler.admission import AdmissionQueue, SaturationPolicy, Ticket, pool_saturation
from scheduler.pool import EndpointPool


class Overloaded(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "overloaded"


class AdmissionGate:
    def __init__(
        self,
        settings: GatewaySettings,
        pool: EndpointPool,
        metrics: GatewayMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._settings: AdmissionSettings = settings.admission
        self._max_age_s = settings.discovery.stale_after_s
        self._pool = pool
        self._metrics = metrics
        self._clock = clock
        self._policy = SaturationPolicy(
            queue_threshold=self._settings.queue_threshold,
            kv_threshold=self._settings.kv_threshold,
            max_running=self._settings.max_running_per_worker,
        )
        self._queues: dict[str, AdmissionQueue] = {}
        self._waiters: dict[Ticket, asyncio.Future[None]] = {}

    def saturation(self, model: str) -> float:
        return pool_saturation(
            self._pool.snapshot,
            self._pool.in_flight,
            model,
            self._clock(),
            self._max_age_s,
            self._policy,
        )

    def queued(self) -> dict[str, int]:
        return {model: len(queue) for model, queue in self._queues.items()}

    async def enter(self, model: str, priority: int, tenant: str) -> None:
        """Return when the request may be dispatched; raise :class:`Overloaded` to shed it."""
        if not self._settings.enabled:
            return
        queue = self._queue(model)
        if not queue and self.saturation(model) < 1.0:
            return
        if not any(e.healthy and model in e.models for e in self._pool.snapshot.endpoints):
            return  # nothing to wait for: routing answers 503 at once
        now = self._clock()
        if priority <= self._settings.shed_at_or_below:
            self._shed("sheddable", 1.0)
        ticket = Ticket(priority=priority, tenant=tenant, arrived=now)
        shed = queue.offer(ticket, now)
        if shed is not None:
            self._shed(shed.reason, shed.retry_after_s)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = waiter
        self.wake(model, limit=1)
        try:
            async with asyncio.timeout(self._settings.max_wait_s):
                await waiter
        except TimeoutError:
            self._shed("queue_timeout", queue.retry_after(self._clock()))
        finally:
            self._waiters.pop(ticket, None)
            queue.remove(ticket)
            self._metrics.queue_wait(self._clock() - now)

    def completed(self, model: str) -> None:
        """A request for ``model`` finished: a slot may have freed."""
        queue = self._queues.get(model)
        if queue is not None:
            queue.completed(self._clock())
            self.wake(model, limit=1)

    def wake_all(self) -> None:
        """After a probe round: release up to one waiter per worker with room."""
        for model, queue in self._queues.items():
            if queue:
                self.wake(model, limit=max(1, len(self._pool.snapshot.endpoints)))

    def wake(self, model: str, *, limit: int) -> None:
        queue = self._queues.get(model)
        released = 0
        while queue and released < limit and self.saturation(model) < 1.0:
            ticket = queue.pop()
            if ticket is None:
                break
            waiter = self._waiters.get(ticket)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
                released += 1

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
