"""The gateway's Prometheus metrics, on an injected registry.

Label children are cached so the proxy path pays a dict lookup, not ``labels()``.
In-flight counts and prefill backlogs are read from the pool at scrape time, costing the
hot path nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.pool import EndpointPool

_M = TypeVar("_M", Counter, Histogram)

_LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
)
# 10 ms steps where inter-token targets sit, so a target there is a bound and the share of
# requests over it is exact (the autoscaler's miss share).
_ITL_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.03,
    0.04,
    0.05,
    0.06,
    0.08,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
)
_DEPTH_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry, pool: EndpointPool) -> None:
        self.registry = registry
        self._requests = Counter(
            "tidegate_requests",
            "Requests answered, by model, route and HTTP status.",
            ["model", "route", "status"],
            registry=registry,
        )
        self._latency = Histogram(
            "tidegate_request_duration_seconds",
            "End-to-end latency as the gateway saw it.",
            ["model", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._ttft = Histogram(
            "tidegate_time_to_first_token_seconds",
            "Time to the first streamed event.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._itl = Histogram(
            "tidegate_inter_token_latency_seconds",
            "Time between streamed events (a chunk's gap shared among the events it carries).",
            ["model"],
            buckets=_ITL_BUCKETS,
            registry=registry,
        )
        self._tpot = Histogram(
            "tidegate_time_per_output_token_seconds",
            "Mean time between one request's streamed events after the first, observed when "
            "its stream ends (what a per-request ITL target is about).",
            ["model"],
            buckets=_ITL_BUCKETS,
            registry=registry,
        )
        self._prompt_tokens = Counter(
            "tidegate_prompt_tokens",
            "Prompt tokens, from the workers' usage.",
            ["model"],
            registry=registry,
        )
        self._completion_tokens = Counter(
            "tidegate_completion_tokens",
            "Completion tokens, from the workers' usage.",
            ["model"],
            registry=registry,
        )
        self._attempts = Counter(
            "tidegate_upstream_attempts",
            "Attempts to reach a worker, by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self._queue_depth = Histogram(
            "tidegate_router_queue_depth",
            "Queue depth (waiting + in flight) of the worker the router chose.",
            buckets=_DEPTH_BUCKETS,
            registry=registry,
        )
        self._shed = Counter(
            "tidegate_admission_shed",
            "Requests shed by admission control, by reason.",
            ["reason"],
            registry=registry,
        )
        self._queue_wait = Histogram(
            "tidegate_admission_wait_seconds",
            "Time requests were held by admission control.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        registry.register(_PoolCollector(pool))
        self._children: dict[tuple[object, ...], Counter | Histogram] = {}

    def _child(self, metric: _M, *labels: str) -> _M:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return cast(_M, child)

    def request_done(self, model: str, route: str, status: int, seconds: float) -> None:
        self._child(self._requests, model, route, str(status)).inc()
        self._child(self._latency, model, route).observe(seconds)

    def first_token(self, model: str, seconds: float) -> None:
        self._child(self._ttft, model).observe(seconds)

    def inter_token(self, model: str, seconds: float, events: int) -> None:
        hist = self._child(self._itl, model)
        for _ in range(events):
            hist.observe(seconds)

    def time_per_output_token(self, model: str, seconds: float) -> None:
        self._child(self._tpot, model).observe(seconds)

    def usage(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        self._child(self._prompt_tokens, model).inc(prompt_tokens)
        self._child(self._completion_tokens, model).inc(completion_tokens)

    def attempt(self, endpoint: str, outcome: str) -> None:
        self._child(self._attempts, endpoint, outcome).inc()

    def shed(self, reason: str) -> None:
        self._child(self._shed, reason).inc()

    def queue_wait(self, seconds: float) -> None:
        self._queue_wait.observe(seconds)

    def watch_admission(self, queued: Callable[[], Mapping[str, int]]) -> None:
        """Export the requests admission control holds, per model, read at scrape time."""
        self.registry.register(_QueuedCollector(queued))

    def routed(self, queue_depth: float) -> None:
        self._queue_depth.observe(queue_depth)


class _QueuedCollector(Collector):
    def __init__(self, queued: Callable[[], Mapping[str, int]]) -> None:
        self._queued = queued

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tidegate_admission_queued_requests",
            "Requests admission control is holding, by model (also those waiting for the "
            "first replica of a model scaled to zero).",
            labels=["model"],
        )
        for model, count in sorted(self._queued().items()):
            family.add_metric([model], count)
        yield family


class _PoolCollector(Collector):
    def __init__(self, pool: EndpointPool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tidegate_in_flight_requests",
            "Requests this gateway has in flight, by endpoint.",
            labels=["endpoint"],
        )
        for url, count in sorted(self._pool.in_flight.items()):
            family.add_metric([url], count)
        yield family
        backlog = GaugeMetricFamily(
            "tidegate_prefill_backlog_tokens",
            "Estimated prompt tokens this gateway has sent each endpoint that have no first "
            "token back yet (what admission.max_prefill_tokens_per_worker bounds).",
            labels=["endpoint"],
        )
        for url, tokens in sorted(self._pool.prefill_tokens.items()):
            backlog.add_metric([url], tokens)
        yield backlog
