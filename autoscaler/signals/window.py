"""Signals from two scrapes of the same endpoints: rates from counter deltas, percentiles
and the window's histograms (TTFT and per-request mean ITL, from which the decision reads
the share of requests over a target) from bucket deltas, the queue from the latest gauges.

Pure: the scraping source keeps the scrapes and calls these. A rate needs a baseline
scrape inside the window where the same gateways answered; a gateway that did not answer
either time makes the Observation stale (its requests would be missing from the rate, and
a low rate must never scale down).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from autoscaler.policy.observation import Observation
from autoscaler.signals.exposition import GatewayCounters
from autoscaler.signals.histogram import add_buckets, bucket_delta, counter_delta, quantile
from autoscaler.signals.source import QUANTILE


@dataclass(frozen=True, slots=True)
class Scrape:
    at: float
    gateways: Mapping[str, GatewayCounters | None]
    """Gateway URL -> its counters, None where it did not answer."""
    waiting: Mapping[str, float] = field(default_factory=dict)
    """Model -> vLLM waiting requests, summed over the workers that answered."""
    workers_answered: int = 0


def pick_baseline(scrapes: Sequence[Scrape], now: float, window_s: float) -> Scrape | None:
    """The oldest scrape no older than the window (scrapes oldest first)."""
    for scrape in scrapes:
        if now - window_s <= scrape.at < now:
            return scrape
    return None


def observe_model(
    model: str, ready_replicas: int, latest: Scrape, baseline: Scrape | None
) -> Observation:
    fresh = bool(latest.gateways) and all(c is not None for c in latest.gateways.values())
    held = [c.held[model] for c in latest.gateways.values() if c is not None and model in c.held]
    queued: float | None = None
    if latest.workers_answered or held:
        queued = latest.waiting.get(model, 0.0) + sum(held)
    if baseline is None or latest.at <= baseline.at:
        return Observation(at=latest.at, ready_replicas=ready_replicas, queued=queued, fresh=fresh)
    requests = 0.0
    ttft: dict[float, float] = {}
    itl: dict[float, float] = {}
    tpot: dict[float, float] = {}
    for url, now_counters in latest.gateways.items():
        then = baseline.gateways.get(url)
        if now_counters is None or then is None:
            fresh = False
            continue
        requests += counter_delta(
            then.requests.get(model, 0.0), now_counters.requests.get(model, 0.0)
        )
        add_buckets(ttft, bucket_delta(then.ttft.get(model, {}), now_counters.ttft.get(model, {})))
        add_buckets(itl, bucket_delta(then.itl.get(model, {}), now_counters.itl.get(model, {})))
        add_buckets(tpot, bucket_delta(then.tpot.get(model, {}), now_counters.tpot.get(model, {})))
    return Observation(
        at=latest.at,
        ready_replicas=ready_replicas,
        arrival_rps=requests / (latest.at - baseline.at),
        ttft_p95_s=quantile(QUANTILE, ttft),
        itl_p95_s=quantile(QUANTILE, itl),
        queued=queued,
        fresh=fresh,
        ttft_buckets=tuple(sorted(ttft.items())),
        itl_buckets=tuple(sorted(tpot.items())),
    )


def observe_all(
    ready_replicas: Mapping[str, int], latest: Scrape, baseline: Scrape | None
) -> dict[str, Observation]:
    return {m: observe_model(m, r, latest, baseline) for m, r in ready_replicas.items()}
