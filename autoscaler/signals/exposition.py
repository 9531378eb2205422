"""Read the few series the autoscaler needs out of a gateway's ``/metrics`` page.

Only the lines of the wanted series go to prometheus-client's parser (untyped, so sample
names stay as written); a page holds many other families. Per model: requests answered
(summed over routes and statuses), cumulative TTFT, ITL and per-request mean ITL buckets,
requests held by admission when the gateway exposes that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from autoscaler.signals.source import HELD, ITL, REQUESTS, TPOT, TTFT

_WANTED = (REQUESTS, f"{TTFT}_bucket", f"{ITL}_bucket", f"{TPOT}_bucket", HELD)


@dataclass(frozen=True, slots=True)
class GatewayCounters:
    """One gateway's cumulative counters at one scrape, per model."""

    requests: dict[str, float] = field(default_factory=dict)
    ttft: dict[str, dict[float, float]] = field(default_factory=dict)
    itl: dict[str, dict[float, float]] = field(default_factory=dict)
    tpot: dict[str, dict[float, float]] = field(default_factory=dict)
    held: dict[str, float] = field(default_factory=dict)


def _bound(le: str) -> float:
    return math.inf if le in {"+Inf", "Inf", "inf"} else float(le)


def parse_gateway_page(page: str) -> GatewayCounters:
    lines = [line for line in page.splitlines() if line.startswith(_WANTED)]
    out = GatewayCounters()
    if not lines:
        return out
    histograms = {f"{TTFT}_bucket": out.ttft, f"{ITL}_bucket": out.itl, f"{TPOT}_bucket": out.tpot}
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for sample in family.samples:
            model = sample.labels.get("model")
            if model is None:
                continue
            if sample.name == REQUESTS:
                out.requests[model] = out.requests.get(model, 0.0) + sample.value
            elif sample.name == HELD:
                out.held[model] = out.held.get(model, 0.0) + sample.value
            elif sample.name in histograms and "le" in sample.labels:
                into = histograms[sample.name]
                buckets = into.setdefault(model, {})
                le = _bound(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return out
