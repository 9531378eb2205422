"""Builders shared by the scheduler tests."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from scheduler.endpoint import Endpoint, EngineStats, PoolSnapshot
from scheduler.framework import RoutingContext
from scheduler.request import RoutingRequest

NOW = 100.0


def ep(
    url: str,
    waiting: float = 0,
    *,
    running: float = 0,
    kv: float = 0.0,
    healthy: bool = True,
    age: float | None = 0.5,
    models: tuple[str, ...] = ("m",),
) -> Endpoint:
    return Endpoint(
        url=url,
        healthy=healthy,
        scraped_at=None if age is None else NOW - age,
        models=frozenset(models),
        stats={m: EngineStats(running=running, waiting=waiting, kv_cache_usage=kv) for m in models},
    )


def ctx(
    endpoints: Sequence[Endpoint],
    in_flight: Mapping[str, int] | None = None,
    *,
    request: RoutingRequest | None = None,
    exclude: Collection[str] = (),
    in_flight_tokens: Mapping[str, int] | None = None,
    gateway_replicas: int = 1,
) -> RoutingContext:
    return RoutingContext(
        request=request or RoutingRequest(model="m"),
        snapshot=PoolSnapshot(tuple(endpoints)),
        in_flight=in_flight or {},
        now=NOW,
        max_age_s=5.0,
        exclude=exclude,
        in_flight_tokens=in_flight_tokens or {},
        gateway_replicas=gateway_replicas,
    )
