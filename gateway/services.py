"""The composition root: builds every part of a running gateway from its settings."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from prometheus_client import CollectorRegistry

from gateway.admission import AdmissionGate
from gateway.metrics import GatewayMetrics
from gateway.proxy import Proxy
from gateway.settings import GatewaySettings
from gateway.upstream import Upstream
from scheduler.config import build_router
from scheduler.framework import Router
from scheduler.pool import EndpointPool
from scheduler.prefix_exchange import ObservationBuffer, prefix_learners
from scheduler.probe import Prober, cancel_and_wait

if TYPE_CHECKING:
    from gateway.prefix_exchange import PrefixExchange
    from scheduler.discovery.bridge import ThreadedDiscovery

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: GatewaySettings
    registry: CollectorRegistry
    pool: EndpointPool
    metrics: GatewayMetrics
    session: aiohttp.ClientSession
    prober: Prober
    gate: AdmissionGate
    proxy: Proxy
    clock: Callable[[], float]
    _probe_task: asyncio.Task[None] | None = None
    _discovery: ThreadedDiscovery | None = None
    exchange: PrefixExchange | None = None
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    async def start(
        cls,
        settings: GatewaySettings,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Services:
        """Build everything, probe every worker once, then keep probing in the background."""
        registry = registry if registry is not None else CollectorRegistry()
        pool = EndpointPool()
        pool.set_urls(settings.discovery.workers)
        metrics = GatewayMetrics(registry, pool)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        discovery = settings.discovery
        gate = AdmissionGate(settings, pool, metrics, clock)
        metrics.watch_admission(gate.queued)
        prober = Prober(
            pool,
            session,
            interval_s=discovery.probe_interval_s,
            timeout_s=discovery.probe_timeout_s,
            models_refresh_s=discovery.models_refresh_s,
            clock=clock,
            on_round=gate.wake_all,
        )
        outbox = (
            ObservationBuffer(settings.prefix_exchange.buffer)
            if settings.prefix_exchange.enabled
            else None
        )
        router = build_router(settings.scheduler, also_observe=outbox)
        proxy = Proxy(
            settings=settings,
            pool=pool,
            router=router,
            gate=gate,
            upstream=Upstream(
                session=session, metrics=metrics, clock=clock, timeouts=settings.timeouts
            ),
            metrics=metrics,
            clock=clock,
            rng=random.Random(settings.seed),
        )
        services = cls(settings, registry, pool, metrics, session, prober, gate, proxy, clock)
        if discovery.kubernetes is not None:
            await services._start_kubernetes_discovery()
        if outbox is not None:
            services._start_prefix_exchange(router, outbox)
        await prober.probe_all()
        services._probe_task = asyncio.create_task(prober.run(), name="tidegate-prober")
        return services

    async def _start_kubernetes_discovery(self) -> None:
        """Watch the workers' EndpointSlices; wait briefly for the first list so the first
        probe round already has workers to probe."""
        kubernetes = self.settings.discovery.kubernetes
        assert kubernetes is not None
        # Imported here: only a gateway configured for Kubernetes loads the Kubernetes client.
        try:
            from scheduler.discovery.kube import kubernetes_discovery
        except ImportError as exc:
            raise RuntimeError(
                "discovery.kubernetes needs the Kubernetes client: "
                "pip install 'tidegate[kubernetes]'"
            ) from exc

        self._discovery = kubernetes_discovery(kubernetes, self.set_workers)
        if not await self._discovery.start(kubernetes.initial_sync_timeout_s):
            log.warning(
                "no answer from Kubernetes discovery within %gs; starting without workers",
                kubernetes.initial_sync_timeout_s,
            )

    def _start_prefix_exchange(self, router: Router, outbox: ObservationBuffer) -> None:
        redis = self.settings.redis
        assert redis is not None  # checked when the settings loaded
        # Imported here: only a gateway that exchanges its prefix index loads the Redis client.
        try:
            from gateway.prefix_exchange import PrefixExchange
        except ImportError as exc:
            raise RuntimeError(
                "prefix_exchange needs the Redis client: pip install 'tidegate[redis]'"
            ) from exc

        self.exchange = PrefixExchange(
            self.settings.prefix_exchange, redis, outbox, prefix_learners(router), self.registry
        )
        self.exchange.start()

    def set_workers(self, urls: Iterable[str]) -> None:
        """Route to exactly these workers from now on (discovery's answer); a worker that left
        gets no new request, while requests already sent to it run to their end."""
        wanted = sorted(set(urls))
        known = {e.url for e in self.pool.snapshot.endpoints}
        gone = known - set(wanted)
        self.pool.set_urls(wanted)
        for url in gone:
            self.prober.forget(url)
        for url in set(wanted) - known:  # probe newcomers now, not at the next round
            task = asyncio.get_running_loop().create_task(self._probe_newcomer(url))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        log.info("workers: %d (%d left)", len(wanted), len(gone))

    async def _probe_newcomer(self, url: str) -> None:
        await self.prober.probe(url)
        self.gate.wake_all()  # a first replica may be what held requests wait for

    async def stop(self) -> None:
        if self._discovery is not None:
            await self._discovery.stop()
        if self.exchange is not None:
            await self.exchange.stop()
        await cancel_and_wait(self._probe_task)
        await self.session.close()

    def ready(self) -> bool:
        """At least one healthy worker with fresh data serves a configured model, or some
        model is scaled to zero: then the gateway must take requests with no worker at all,
        or nothing would ever ask for the first replica."""
        if self.settings.admission.scale_to_zero.models:
            return True
        serving = self.pool.snapshot.serving(self.clock(), self.settings.discovery.stale_after_s)
        wanted = set(self.settings.models)
        return any(not wanted or wanted & e.models for e in serving)
