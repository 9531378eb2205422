"""Signals by scraping the gateways' and workers' ``/metrics`` directly (no Prometheus).

Every gateway must be listed: each counts only the requests it answered, so a rate from
some of them would be too low (a gateway that does not answer makes the signals stale).
Workers are optional and give vLLM's waiting queue. Scrapes are kept for ``window_s``; the
rate and percentiles cover the span from the oldest kept scrape to the newest.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence

import aiohttp

from autoscaler.policy.observation import Observation
from autoscaler.signals.exposition import GatewayCounters, parse_gateway_page
from autoscaler.signals.window import Scrape, observe_all, pick_baseline
from scheduler.vllm_metrics import parse_engine_stats

log = logging.getLogger(__name__)


class ScrapeSource:
    """:class:`autoscaler.signals.source.SignalSource` over direct ``/metrics`` scrapes."""

    def __init__(
        self,
        gateways: Sequence[str],
        workers: Sequence[str] = (),
        *,
        window_s: float = 60.0,
        timeout_s: float = 3.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._gateways = [_metrics_url(u) for u in gateways]
        self._workers = [_metrics_url(u) for u in workers]
        self._window_s = window_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._owns_session = session is None
        self._scrapes: deque[Scrape] = deque()

    async def observe(
        self, ready_replicas: Mapping[str, int], now: float
    ) -> dict[str, Observation]:
        pages = await asyncio.gather(*(self._get(u) for u in [*self._gateways, *self._workers]))
        gateway_pages, worker_pages = pages[: len(self._gateways)], pages[len(self._gateways) :]
        gateways: dict[str, GatewayCounters | None] = {
            url: None if page is None else parse_gateway_page(page)
            for url, page in zip(self._gateways, gateway_pages, strict=True)
        }
        waiting: dict[str, float] = {}
        answered = 0
        for page in worker_pages:
            if page is None:
                continue
            answered += 1
            for model, stats in parse_engine_stats(page).items():
                waiting[model] = waiting.get(model, 0.0) + stats.waiting
        latest = Scrape(now, gateways, waiting, answered)
        while self._scrapes and now - self._scrapes[0].at > self._window_s:
            self._scrapes.popleft()
        baseline = pick_baseline(self._scrapes, now, self._window_s)
        self._scrapes.append(latest)
        return observe_all(ready_replicas, latest, baseline)

    async def _get(self, url: str) -> str | None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(url, timeout=self._timeout) as response:
                response.raise_for_status()
                return await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("scraping %s failed: %s", url, exc)
            return None

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None


def _metrics_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/metrics") else f"{base}/metrics"
