"""Routing inside the virtual-time replay, with the gateway's own decision code.

``GatewayRoute`` adapts any router with the framework's ``route(ctx, rng)`` shape (a
:class:`~scheduler.framework.Router` built from config, or a baseline) to the simulator's
fleet loop. It sees what a gateway sees: engine gauges as of the last probe (every
``probe_interval_s`` of virtual time) and live in-flight counts (every request goes
through it, so a worker's running + waiting is exactly what it has in flight there).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scheduler.admission import SaturationPolicy, pool_saturation
from scheduler.endpoint import Endpoint, EngineStats, PoolSnapshot
from scheduler.framework import Decision, RoutingContext
from scheduler.request import RoutingRequest
from workers.sim.engine import EngineSnapshot, RequestRecord
from workers.sim.replay import ReplayReport, ReplayRequest

MODEL = "replay-model"


def routing_request(request: ReplayRequest) -> RoutingRequest:
    """What the gateway's router sees of a replayed request."""
    return RoutingRequest(
        model=MODEL,
        prefix_blocks=request.trace_block_ids or request.block_hashes or (),
        prompt_tokens=request.prompt_tokens,
    )


class RoutesRequests(Protocol):
    def route(self, ctx: RoutingContext, rng: random.Random) -> Decision: ...


@dataclass
class GatewayRoute:
    router: RoutesRequests
    workers: int
    probe_interval_s: float = 1.0
    stale_after_s: float = 5.0
    seed: int = 0
    load_ratios: list[float] = field(default_factory=list)
    _urls: tuple[str, ...] = field(init=False)
    _snapshot: PoolSnapshot = field(init=False)
    _probed_at: float = field(init=False, default=float("-inf"))
    _rng: random.Random = field(init=False)
    _tokens: list[int] = field(init=False)
    _prompt_of: dict[str, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._urls = tuple(f"http://worker-{i}" for i in range(self.workers))
        self._index = {url: i for i, url in enumerate(self._urls)}
        self._rng = random.Random(self.seed)
        self._snapshot = PoolSnapshot()
        self._tokens = [0] * self.workers

    def __call__(self, request: ReplayRequest, engines: Sequence[EngineSnapshot]) -> int:
        now = request.arrival_s
        if now - self._probed_at >= self.probe_interval_s:
            self._probe(engines, now)
        in_flight = {
            url: e.num_running + e.num_waiting for url, e in zip(self._urls, engines, strict=True)
        }
        loads = list(in_flight.values())
        mean = sum(loads) / len(loads)
        if mean >= 1.0:
            self.load_ratios.append(max(loads) / mean)
        ctx = RoutingContext(
            routing_request(request),
            self._snapshot,
            in_flight,
            now,
            self.stale_after_s,
            in_flight_tokens=dict(zip(self._urls, self._tokens, strict=True)),
        )
        index = self._index[self.router.route(ctx, self._rng).endpoint.url]
        self._tokens[index] += request.prompt_tokens
        self._prompt_of[request.request_id] = request.prompt_tokens
        return index

    def finished(self, index: int, records: Sequence[RequestRecord]) -> None:
        """Requests finished on engine ``index``: their tokens are no longer in flight."""
        for record in records:
            self._tokens[index] -= self._prompt_of.pop(record.request_id, 0)

    def saturation(
        self, engines: Sequence[EngineSnapshot], now: float, policy: SaturationPolicy
    ) -> float:
        """The pool's saturation as the gateway's admission gate would compute it now."""
        if now - self._probed_at >= self.probe_interval_s:
            self._probe(engines, now)
        in_flight = {
            url: e.num_running + e.num_waiting for url, e in zip(self._urls, engines, strict=True)
        }
        return pool_saturation(self._snapshot, in_flight, MODEL, now, self.stale_after_s, policy)

    def tokens_in_flight(self) -> list[int]:
        return list(self._tokens)

    def next_probe_at(self) -> float:
        return self._probed_at + self.probe_interval_s

    def _probe(self, engines: Sequence[EngineSnapshot], now: float) -> None:
        self._snapshot = PoolSnapshot(
            tuple(
                Endpoint(
                    url=url,
                    healthy=True,
                    scraped_at=now,
                    models=frozenset({MODEL}),
                    stats={MODEL: EngineStats(e.num_running, e.num_waiting, e.kv_cache_usage)},
                )
                for url, e in zip(self._urls, engines, strict=True)
            )
        )
        self._probed_at = now


@dataclass(frozen=True)
class RoutingResult:
    policy: str
    requests: int
    ttft_p50_s: float
    ttft_p99_s: float
    itl_p99_s: float
    throughput_tok_s: float
    prefix_hit_rate: float
    max_mean_load: float
    goodput: float
    """Requests per second that met the TTFT SLO."""
    slo_attainment: float
    rejected: int


def summarize(
    policy: str, report: ReplayReport, route: GatewayRoute, ttft_slo_s: float
) -> RoutingResult:
    records = [r for r in report.records if r.first_token_at is not None]
    ttfts = sorted(_ttft(r) for r in records)
    itls = sorted(_mean_itl(r) for r in records if r.num_generated > 1)
    start = min(r.arrived_at for r in records)
    end = max(r.finished_at for r in records)
    generated = sum(r.num_generated for r in records)
    prompt = sum(r.prompt_tokens for r in records)
    cached = sum(r.cached_prompt_tokens for r in records)
    met = sum(1 for t in ttfts if t <= ttft_slo_s)
    return RoutingResult(
        policy=policy,
        requests=len(records),
        ttft_p50_s=_pct(ttfts, 0.50),
        ttft_p99_s=_pct(ttfts, 0.99),
        itl_p99_s=_pct(itls, 0.99) if itls else 0.0,
        throughput_tok_s=generated / (end - start),
        prefix_hit_rate=cached / prompt if prompt else 0.0,
        max_mean_load=statistics.fmean(route.load_ratios) if route.load_ratios else 1.0,
        goodput=met / (end - start),
        slo_attainment=met / len(records),
        rejected=len(report.rejected),
    )


def _ttft(record: RequestRecord) -> float:
    assert record.first_token_at is not None
    return record.first_token_at - record.arrived_at


def _mean_itl(record: RequestRecord) -> float:
    assert record.first_token_at is not None and record.last_token_at is not None
    return (record.last_token_at - record.first_token_at) / (record.num_generated - 1)


def _pct(values: Sequence[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]
