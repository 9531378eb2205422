"""vLLM's Prometheus metrics for the simulated worker, on an injected registry.

One collector renders everything at scrape time: gauges and token counters straight from
the engine's snapshot (so they are never stale), request histograms and outcome counters
from ``RequestStats``, which the engine feeds as an ``EngineObserver``. Histograms are
plain bucket arrays updated without locks (the server is single-threaded asyncio), which
keeps per-request cost to a few bisects.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from workers.sim.engine import EngineSnapshot, FinishReason, RequestRecord

# vLLM v1's bucket boundaries (seconds).
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
    50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
ITERATION_TOKENS_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


def one_two_five_buckets(max_value: int) -> tuple[int, ...]:
    """1, 2, 5, 10, 20, 50, ... up to ``max_value``: vLLM's token-count buckets."""
    buckets: list[int] = []
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * scale > max_value:
                return tuple(buckets)
            buckets.append(mantissa * scale)
        scale *= 10


FINISH_REASONS: tuple[FinishReason, ...] = ("stop", "length", "abort")


class BucketHistogram:
    """Counts per bucket (``<= bound``) plus sum; rendered cumulatively on collect."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # last slot: above every bound
        self.total = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.total += value * times

    def family(self, name: str, doc: str, labels: list[str], values: list[str]) -> Metric:
        family = HistogramMetricFamily(name, doc, labels=labels)
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append((_bucket_label(bound), cumulative))
        family.add_metric(values, buckets, self.total)
        return family


def _bucket_label(bound: float) -> str:
    """The ``le`` label as prometheus_client writes it ("0.005", "1.0", "+Inf")."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


class RequestStats:
    """Per-request and per-step observations; implements ``EngineObserver``."""

    def __init__(self, max_model_len: int = 8192) -> None:
        self.ttft = BucketHistogram(TTFT_BUCKETS)
        self.inter_token = BucketHistogram(ITL_BUCKETS)
        self.time_per_output_token = BucketHistogram(ITL_BUCKETS)
        self.e2e = BucketHistogram(REQUEST_LATENCY_BUCKETS)
        self.queue = BucketHistogram(REQUEST_LATENCY_BUCKETS)
        self.prefill = BucketHistogram(REQUEST_LATENCY_BUCKETS)
        self.decode = BucketHistogram(REQUEST_LATENCY_BUCKETS)
        self.inference = BucketHistogram(REQUEST_LATENCY_BUCKETS)
        self.prompt_tokens = BucketHistogram(one_two_five_buckets(max_model_len))
        self.generation_tokens = BucketHistogram(one_two_five_buckets(max_model_len))
        self.iteration_tokens = BucketHistogram(ITERATION_TOKENS_BUCKETS)
        self.finished: dict[FinishReason, int] = dict.fromkeys(FINISH_REASONS, 0)

    def step_finished(self, num_tokens: int) -> None:
        self.iteration_tokens.observe(num_tokens)

    def request_finished(self, record: RequestRecord) -> None:
        self.finished[record.finish_reason] += 1
        self.e2e.observe(record.finished_at - record.arrived_at)
        self.prompt_tokens.observe(record.prompt_tokens)
        self.generation_tokens.observe(record.num_generated)
        scheduled = record.scheduled_at
        if scheduled is not None:
            self.queue.observe(scheduled - record.arrived_at)
        first, last = record.first_token_at, record.last_token_at
        if first is not None:
            self.ttft.observe(first - record.arrived_at)
            if scheduled is not None:
                self.prefill.observe(first - scheduled)
            if last is not None:
                self.decode.observe(last - first)
                if scheduled is not None:
                    self.inference.observe(last - scheduled)
                if record.num_generated > 1:
                    # Mean gap, once per gap: exact for evenly spaced tokens, cheap for
                    # long outputs (the per-request histogram is exact either way).
                    gaps = record.num_generated - 1
                    mean_gap = (last - first) / gaps
                    self.inter_token.observe(mean_gap, gaps)
                    self.time_per_output_token.observe(mean_gap)


class SimCollector(Collector):
    """Renders the vLLM metric families for one served model (``engine="0"``)."""

    def __init__(
        self,
        *,
        model_name: str,
        snapshot: Callable[[], EngineSnapshot],
        stats: RequestStats,
        cache_info: Mapping[str, str] | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._stats = stats
        self._labels = ["model_name", "engine"]
        self._values = [model_name, "0"]
        self._cache_info = dict(cache_info or {})

    def collect(self) -> Iterator[Metric]:
        snap, stats = self._snapshot(), self._stats
        labels, values = self._labels, self._values
        gauges = (
            ("vllm:num_requests_running", "Number of requests in model execution batches.",
             snap.num_running),
            ("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
             snap.num_waiting),
            ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
             snap.kv_cache_usage),
        )  # fmt: skip
        for name, doc, value in gauges:
            gauge = GaugeMetricFamily(name, doc, labels=labels)
            gauge.add_metric(values, value)
            yield gauge
        counters = (
            ("vllm:prompt_tokens", "Number of prefill tokens processed.",
             snap.prompt_tokens_total),
            ("vllm:generation_tokens", "Number of generation tokens processed.",
             snap.generation_tokens_total),
            ("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
             snap.num_preemptions_total),
            ("vllm:prefix_cache_queries",
             "Prefix cache queries, in terms of number of queried tokens.",
             snap.prefix_cache_queries_total),
            ("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
             snap.prefix_cache_hits_total),
        )  # fmt: skip
        for name, doc, count in counters:
            counter = CounterMetricFamily(name, doc, labels=labels)
            counter.add_metric(values, count)
            yield counter
        success = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=[*labels, "finished_reason"],
        )
        for reason, finished in stats.finished.items():
            success.add_metric([*values, reason], finished)
        yield success
        histograms = (
            ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
             stats.ttft),
            ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
             stats.inter_token),
            ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
             stats.e2e),
            ("vllm:request_queue_time_seconds",
             "Histogram of time spent in WAITING phase for request.", stats.queue),
        )  # fmt: skip
        for name, doc, histogram in histograms:
            yield histogram.family(name, doc, labels, values)
        yield from self._more_histograms()
        if self._cache_info:
            info = GaugeMetricFamily(
                "vllm:cache_config_info",
                "Information of the LLMEngine CacheConfig",
                labels=[*self._cache_info, "engine"],
            )
            info.add_metric([*self._cache_info.values(), "0"], 1.0)
            yield info

    def _more_histograms(self) -> Iterator[Metric]:
        stats, labels, values = self._stats, self._labels, self._values
        histograms = (
            ("vllm:request_time_per_output_token_seconds",
             "Histogram of time_per_output_token_seconds per request.",
             stats.time_per_output_token),
            ("vllm:request_prefill_time_seconds",
             "Histogram of time spent in PREFILL phase for request.", stats.prefill),
            ("vllm:request_decode_time_seconds",
             "Histogram of time spent in DECODE phase for request.", stats.decode),
            ("vllm:request_inference_time_seconds",
             "Histogram of time spent in RUNNING phase for request.", stats.inference),
            ("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
             stats.prompt_tokens),
            ("vllm:request_generation_tokens", "Number of generation tokens processed.",
             stats.generation_tokens),
            ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
             stats.iteration_tokens),
        )  # fmt: skip
        for name, doc, histogram in histograms:
            yield histogram.family(name, doc, labels, values)


def register_metrics(
    registry: CollectorRegistry,
    *,
    model_name: str,
    snapshot: Callable[[], EngineSnapshot],
    stats: RequestStats,
    cache_info: Mapping[str, str] | None = None,
) -> SimCollector:
    collector = SimCollector(
        model_name=model_name, snapshot=snapshot, stats=stats, cache_info=cache_info
    )
    registry.register(collector)
    return collector
