"""Probes workers over HTTP and records what it finds in the :class:`EndpointPool`.

A probe round asks every worker, concurrently, for ``/health`` and ``/metrics`` (and
``/v1/models`` when its model list is unknown or due for a refresh). Any failure marks the
worker unhealthy at once; routing also refuses a worker whose last good probe is too old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson

from scheduler.pool import EndpointPool, ProbeResult
from scheduler.vllm_metrics import parse_engine_stats

log = logging.getLogger(__name__)


class ProbeError(Exception):
    pass


class Prober:
    def __init__(
        self,
        pool: EndpointPool,
        session: aiohttp.ClientSession,
        *,
        interval_s: float,
        timeout_s: float,
        models_refresh_s: float,
        clock: Callable[[], float],
        on_round: Callable[[], None] | None = None,
    ) -> None:
        self._pool = pool
        self._on_round = on_round
        self._session = session
        self._interval_s = interval_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._models_refresh_s = models_refresh_s
        self._clock = clock
        self._models_fetched_at: dict[str, float] = {}
        self._cards: dict[str, dict[str, Mapping[str, Any]]] = {}
        self.rounds = 0

    async def probe_all(self) -> None:
        urls = [e.url for e in self._pool.snapshot.endpoints]
        await asyncio.gather(*(self.probe(url) for url in urls))
        self.rounds += 1
        if self._on_round is not None:
            self._on_round()

    async def run(self) -> None:
        """Probe forever, one round per interval, after the round start-up already did
        (a slow worker does not delay the others)."""
        while True:
            await asyncio.sleep(self._interval_s)
            await self.probe_all()

    async def probe(self, url: str) -> None:
        try:
            result = await self._probe(url)
        except (aiohttp.ClientError, TimeoutError, ProbeError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            endpoint = self._pool.snapshot.by_url(url)
            if endpoint is not None and endpoint.healthy:
                log.warning("worker %s failed its probe: %s", url, reason)
            self._pool.record_failure(url, reason)
            self._models_fetched_at.pop(url, None)
        else:
            self._pool.record_probe(url, result, self._clock())

    async def _probe(self, url: str) -> ProbeResult:
        now = self._clock()
        refresh = now - self._models_fetched_at.get(url, float("-inf")) >= self._models_refresh_s
        health, metrics, cards = await asyncio.gather(
            self._get(url, "/health"),
            self._get(url, "/metrics"),
            self._get(url, "/v1/models") if refresh else _none(),
        )
        del health
        if cards is not None:
            self._cards[url] = _model_cards(cards)
            self._models_fetched_at[url] = now
        known = self._cards.get(url, {})
        return ProbeResult(
            models=frozenset(known),
            stats=parse_engine_stats(metrics.decode("utf-8", "replace")),
            model_cards=known,
        )

    async def _get(self, url: str, path: str) -> bytes:
        async with self._session.get(url + path, timeout=self._timeout) as response:
            body = await response.read()
            if response.status != 200:
                raise ProbeError(f"GET {path} answered {response.status}")
            return body

    def forget(self, url: str) -> None:
        self._models_fetched_at.pop(url, None)
        self._cards.pop(url, None)


async def _none() -> None:
    return None


def _model_cards(body: bytes) -> dict[str, Mapping[str, Any]]:
    payload = orjson.loads(body)
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ProbeError("/v1/models did not return an OpenAI model list")
    return {card["id"]: card for card in data if isinstance(card, dict) and "id" in card}


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
