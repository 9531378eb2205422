"""The PromQL the autoscaler asks, and how it reads the query API's answers. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autoscaler.signals.source import HELD, ITL, QUANTILE, REQUESTS, TPOT, TTFT, WAITING


class QueryError(Exception):
    """Prometheus answered with an error, or with something that is not a vector."""


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _range(window_s: float) -> str:
    return f"{max(1, round(window_s))}s"


@dataclass(frozen=True, slots=True)
class ModelQueries:
    arrival: str
    ttft: str
    itl: str
    waiting: str
    held: str
    ttft_buckets: str
    """Per-second rate of each TTFT bucket (one series per ``le``)."""
    tpot_buckets: str
    """The same for requests' mean inter-token latency."""


def model_queries(model: str, window_s: float) -> ModelQueries:
    m, w = _label(model), _range(window_s)

    def buckets(histogram: str) -> str:
        return f'sum by (le) (rate({histogram}_bucket{{model="{m}"}}[{w}]))'

    return ModelQueries(
        arrival=f'sum(rate({REQUESTS}{{model="{m}"}}[{w}]))',
        ttft=f"histogram_quantile({QUANTILE}, {buckets(TTFT)})",
        itl=f"histogram_quantile({QUANTILE}, {buckets(ITL)})",
        waiting=f'sum({WAITING}{{model_name="{m}"}})',
        held=f'sum({HELD}{{model="{m}"}})',
        ttft_buckets=buckets(TTFT),
        tpot_buckets=buckets(TPOT),
    )


def _data(answer: Any, types: set[str]) -> dict[str, Any]:
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error") if isinstance(answer, dict) else answer
        raise QueryError(f"query failed: {error}")
    data = answer.get("data") or {}
    if data.get("resultType") not in types:
        raise QueryError(f"expected a vector, got {data.get('resultType')!r}")
    return dict(data)


def _value(sample: Any) -> float:
    try:
        return float(sample[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise QueryError(f"unreadable sample {sample!r}") from exc


def buckets_of(answer: Any) -> tuple[tuple[float, float], ...]:
    """Cumulative (upper bound, value) buckets from a ``sum by (le)`` vector answer, in
    bound order; empty when the vector is (no such histogram)."""
    data = _data(answer, {"vector"})
    out: dict[float, float] = {}
    for series in data.get("result") or []:
        le = (series.get("metric") or {}).get("le")
        if le is None:
            raise QueryError(f"a bucket series without le: {series!r}")
        try:
            bound = math.inf if le in {"+Inf", "Inf", "inf"} else float(le)
        except ValueError as exc:
            raise QueryError(f"unreadable le {le!r}") from exc
        value = _value(series.get("value"))
        out[bound] = 0.0 if math.isnan(value) else value
    return tuple(sorted(out.items()))


def scalar_of(answer: Any) -> float | None:
    """The one value of an instant-vector answer; None when the vector is empty or NaN
    (``histogram_quantile`` over no observations)."""
    data = _data(answer, {"vector", "scalar"})
    result = data.get("result")
    samples: list[Any] = (
        [result] if data["resultType"] == "scalar" else [r.get("value") for r in result or []]
    )
    if not samples:
        return None
    if len(samples) > 1:
        raise QueryError(f"expected one series, got {len(samples)}")
    value = _value(samples[0])
    return None if math.isnan(value) else value
