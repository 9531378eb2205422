"""Immutable views of the worker pool that routing decisions read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class EngineStats:
    """One model's engine state on one worker, as scraped from vLLM's ``/metrics``."""

    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float = 0.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One worker as the gateway last saw it.

    ``healthy`` is the verdict of the last probe; ``scraped_at`` is the monotonic time of the
    last successful one (``None`` until the first), so a decision can refuse stale data.
    ``healthy_since`` is when the current run of healthy probes began (``None`` while
    unhealthy): how long the worker has been taking requests, for slow start.
    """

    url: str
    healthy: bool = False
    scraped_at: float | None = None
    models: frozenset[str] = frozenset()
    stats: Mapping[str, EngineStats] = field(default_factory=dict)
    model_cards: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    last_error: str | None = None
    healthy_since: float | None = None

    def serves(self, model: str) -> bool:
        return model in self.models

    def fresh(self, now: float, max_age_s: float) -> bool:
        return self.healthy and self.scraped_at is not None and now - self.scraped_at <= max_age_s

    def waiting(self, model: str) -> float:
        stats = self.stats.get(model)
        return stats.waiting if stats is not None else 0.0


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """All endpoints at one moment, keyed by URL, in discovery order."""

    endpoints: tuple[Endpoint, ...] = ()
    known_models: frozenset[str] = field(init=False)
    """Models served by any endpoint, healthy or not (a down worker's model is 503, not 404)."""

    def __post_init__(self) -> None:
        models = frozenset().union(*(e.models for e in self.endpoints))
        object.__setattr__(self, "known_models", models)

    def by_url(self, url: str) -> Endpoint | None:
        for endpoint in self.endpoints:
            if endpoint.url == url:
                return endpoint
        return None

    def serving(self, now: float, max_age_s: float) -> tuple[Endpoint, ...]:
        """Endpoints that are healthy with fresh data."""
        return tuple(e for e in self.endpoints if e.fresh(now, max_age_s))
