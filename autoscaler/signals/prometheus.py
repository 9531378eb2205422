"""Signals from Prometheus's HTTP query API (``GET /api/v1/query``).

Prometheus already sums every gateway's counters and keeps the windows, so one instant
query per signal and model suffices. A query that fails makes the model's Observation
stale. ``down_query``, when set, is an expression whose value is above zero while some
gateway is not being scraped (say ``count(up{job="tidegate-gateway"} == 0)``): a rate summed
without that gateway would be too low, so the signals are stale then too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from autoscaler.policy.observation import Observation
from autoscaler.signals.promql import QueryError, buckets_of, model_queries, scalar_of

log = logging.getLogger(__name__)


class PrometheusSource:
    """:class:`autoscaler.signals.source.SignalSource` over a Prometheus server."""

    def __init__(
        self,
        url: str,
        *,
        window_s: float = 120.0,
        timeout_s: float = 5.0,
        down_query: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._endpoint = url.rstrip("/") + "/api/v1/query"
        self._window_s = window_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._down_query = down_query
        self._session = session
        self._owns_session = session is None

    async def observe(
        self, ready_replicas: Mapping[str, int], now: float
    ) -> dict[str, Observation]:
        gateways_down = False
        if self._down_query:
            try:
                gateways_down = (await self._query(self._down_query) or 0.0) > 0
            except QueryError as exc:
                log.warning("prometheus: %s", exc)
                gateways_down = True
        models = list(ready_replicas)
        observed = await asyncio.gather(
            *(self._observe(m, ready_replicas[m], now, not gateways_down) for m in models)
        )
        return dict(zip(models, observed, strict=True))

    async def _observe(self, model: str, ready: int, now: float, fresh: bool) -> Observation:
        q = model_queries(model, self._window_s)
        try:
            scalars = (q.arrival, q.ttft, q.itl, q.waiting, q.held)
            answers = await asyncio.gather(
                *(self._ask(e) for e in (*scalars, q.ttft_buckets, q.tpot_buckets))
            )
            arrival, ttft, itl, waiting, held = (scalar_of(a) for a in answers[:5])
            ttft_buckets, tpot_buckets = (buckets_of(a) for a in answers[5:])
        except QueryError as exc:
            log.warning("prometheus, model %s: %s", model, exc)
            return Observation(at=now, ready_replicas=ready, fresh=False)
        queued = None if waiting is None and held is None else (waiting or 0.0) + (held or 0.0)
        return Observation(
            at=now,
            ready_replicas=ready,
            arrival_rps=arrival,
            ttft_p95_s=ttft,
            itl_p95_s=itl,
            queued=queued,
            fresh=fresh,
            ttft_buckets=ttft_buckets,
            itl_buckets=tpot_buckets,
        )

    async def _query(self, expr: str) -> float | None:
        return scalar_of(await self._ask(expr))

    async def _ask(self, expr: str) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(
                self._endpoint, params={"query": expr}, timeout=self._timeout
            ) as response:
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise QueryError(f"{expr}: {exc}") from exc
        return answer

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None
