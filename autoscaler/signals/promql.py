"""The PromQL the autoscaler asks, and how it reads the query API's answers. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autoscaler.signals.source import HELD, ITL, QUANTILE, REQUESTS, TTFT, WAITING


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


def model_queries(model: str, window_s: float) -> ModelQueries:
    m, w = _label(model), _range(window_s)

    def p95(histogram: str) -> str:
        return (
            f"histogram_quantile({QUANTILE}, "
            f'sum by (le) (rate({histogram}_bucket{{model="{m}"}}[{w}])))'
        )

    return ModelQueries(
        arrival=f'sum(rate({REQUESTS}{{model="{m}"}}[{w}]))',
        ttft=p95(TTFT),
        itl=p95(ITL),
        waiting=f'sum({WAITING}{{model_name="{m}"}})',
        held=f'sum({HELD}{{model="{m}"}})',
    )


def scalar_of(answer: Any) -> float | None:
    """The one value of an instant-vector answer; None when the vector is empty or NaN
    (``histogram_quantile`` over no observations)."""
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error") if isinstance(answer, dict) else answer
        raise QueryError(f"query failed: {error}")
    data = answer.get("data") or {}
    if data.get("resultType") not in {"vector", "scalar"}:
        raise QueryError(f"expected a vector, got {data.get('resultType')!r}")
    result = data.get("result")
    samples: list[Any] = (
        [result] if data["resultType"] == "scalar" else [r.get("value") for r in result or []]
    )
    if not samples:
        return None
    if len(samples) > 1:
        raise QueryError(f"expected one series, got {len(samples)}")
    try:
        value = float(samples[0][1])
    except (TypeError, ValueError, IndexError) as exc:
        raise QueryError(f"unreadable sample {samples[0]!r}") from exc
    return None if math.isnan(value) else value
