"""The gateway's routing over a fleet whose members come and go.

Like :class:`~autoscaler.replay.fleet.GatewayRoute`, but keyed by replica id instead of a
fixed engine index: replicas join when they are ready and leave when they start draining or
get a preemption notice (the gateway stops sending to a terminating worker at once). It
sees what a gateway sees: engine gauges as of the last probe (every ``probe_interval_s`` of
the engines' clock, and at once when the membership changes, as the gateway probes new
workers at once) and live in-flight counts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from autoscaler.replay.fleet import MODEL, RoutesRequests, routing_request
from scheduler.endpoint import Endpoint, EngineStats, PoolSnapshot
from scheduler.framework import NoEndpointAvailable, RoutingContext
from workers.sim.replay import ReplayRequest, VirtualEngine


@dataclass
class ElasticRoute:
    router: RoutesRequests
    probe_interval_s: float = 1.0
    stale_after_s: float = 5.0
    seed: int = 0
    slow_start_s: float = 0.0
    """The gateway's slow start (``SchedulerSettings.slow_start_s``)."""
    _members: dict[str, tuple[str, VirtualEngine, float]] = field(default_factory=dict)
    """url -> (replica id, engine, when it joined: became healthy)."""
    _snapshot: PoolSnapshot = field(default_factory=PoolSnapshot)
    _probed_at: float = float("-inf")
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def __len__(self) -> int:
        return len(self._members)

    def add(self, replica: str, engine: VirtualEngine, now: float) -> None:
        self._members[f"http://{replica}"] = (replica, engine, now)
        self._probed_at = float("-inf")

    def remove(self, replica: str) -> None:
        if self._members.pop(f"http://{replica}", None) is not None:
            self._probed_at = float("-inf")

    def route(self, request: ReplayRequest, now: float) -> str | None:
        """The replica for ``request``; None when no worker can take it."""
        if not self._members:
            return None
        if now - self._probed_at >= self.probe_interval_s:
            self._probe(now)
        in_flight = {
            url: engine.core.num_running + engine.core.num_waiting
            for url, (_, engine, _) in self._members.items()
        }
        ctx = RoutingContext(
            routing_request(request),
            self._snapshot,
            in_flight,
            now,
            self.stale_after_s,
            slow_start_s=self.slow_start_s,
        )
        try:
            url = self.router.route(ctx, self._rng).endpoint.url
        except NoEndpointAvailable:
            return None
        return self._members[url][0]

    def _probe(self, now: float) -> None:
        self._snapshot = PoolSnapshot(
            tuple(
                Endpoint(
                    url=url,
                    healthy=True,
                    scraped_at=now,
                    healthy_since=joined,
                    models=frozenset({MODEL}),
                    stats={
                        MODEL: EngineStats(
                            engine.core.num_running,
                            engine.core.num_waiting,
                            engine.core.pool.usage,
                        )
                    },
                )
                for url, (_, engine, joined) in self._members.items()
            )
        )
        self._probed_at = now
