"""The composition root: builds every part of a running gateway from its settings."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from prometheus_client import CollectorRegistry

from gateway.admission import AdmissionGate
from gateway.metrics import GatewayMetrics
from gateway.proxy import Proxy
from gateway.settings import GatewaySettings
from scheduler.config import build_router
from scheduler.pool import EndpointPool
from scheduler.probe import Prober, cancel_and_wait


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
        prober = Prober(
            pool,
            session,
            interval_s=discovery.probe_interval_s,
            timeout_s=discovery.probe_timeout_s,
            models_refresh_s=discovery.models_refresh_s,
            clock=clock,
            on_round=gate.wake_all,
        )
        proxy = Proxy(
            settings=settings,
            pool=pool,
            router=build_router(settings.scheduler),
            gate=gate,
            session=session,
            metrics=metrics,
            clock=clock,
            rng=random.Random(settings.seed),
        )
        services = cls(settings, registry, pool, metrics, session, prober, gate, proxy, clock)
        await prober.probe_all()
        services._probe_task = asyncio.create_task(prober.run(), name="tidegate-prober")
        return services

    async def stop(self) -> None:
        await cancel_and_wait(self._probe_task)
        await self.session.close()

    def ready(self) -> bool:
        """At least one healthy worker with fresh data serves a configured model."""
        serving = self.pool.snapshot.serving(self.clock(), self.settings.discovery.stale_after_s)
        wanted = set(self.settings.models)
        return any(not wanted or wanted & e.models for e in serving)
