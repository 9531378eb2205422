"""Counter deltas and percentiles from cumulative histogram buckets, as Prometheus does.

``rate()`` treats a counter that went down as reset to zero in between; ``quantile`` is
``histogram_quantile``: find the bucket the rank falls in and interpolate linearly inside
it, the first bucket starting at 0, and a rank in the ``+Inf`` bucket answered by the
highest finite bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Buckets = Mapping[float, float]
"""Upper bound (``le``; ``math.inf`` for ``+Inf``) -> cumulative count."""


def counter_delta(before: float, after: float) -> float:
    """What a counter gained between two readings; a drop means it restarted from 0."""
    return after - before if after >= before else after


def bucket_delta(before: Buckets, after: Buckets) -> dict[float, float]:
    """Per-bucket increase; a histogram whose count went down restarted, so ``after`` is
    all new (bounds only in ``after`` started from zero)."""
    reset = after.get(math.inf, 0.0) < before.get(math.inf, 0.0) or any(
        after.get(le, 0.0) < count for le, count in before.items()
    )
    if reset:
        return dict(after)
    return {le: count - before.get(le, 0.0) for le, count in after.items()}


def add_buckets(into: dict[float, float], more: Buckets) -> None:
    for le, count in more.items():
        into[le] = into.get(le, 0.0) + count


def _counted(buckets: Buckets) -> tuple[list[float], float] | None:
    """The sorted bounds and the total count; None without a ``+Inf`` bucket or with no
    observations."""
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf or buckets[math.inf] <= 0:
        return None
    return bounds, buckets[math.inf]


def quantile(q: float, buckets: Buckets) -> float | None:
    """The ``q`` quantile (0..1) of observations counted in cumulative ``buckets``; None
    with no observations or no ``+Inf`` bucket."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    counted = _counted(buckets)
    if counted is None:
        return None
    bounds, total = counted
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank and count > below:
            if le == math.inf:
                finite = [b for b in bounds if b != math.inf]
                return finite[-1] if finite else None
            if le <= 0:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, max(below, count)
    return None


def share_above(x: float, buckets: Buckets) -> float | None:
    """The share of observations above ``x`` in cumulative ``buckets``, interpolating
    linearly inside the bucket ``x`` falls in as :func:`quantile` does (exact when ``x`` is
    a bound); None with no observations or no ``+Inf`` bucket. Above the highest finite
    bound only the ``+Inf`` bucket's own observations count."""
    counted = _counted(buckets)
    if counted is None:
        return None
    bounds, total = counted
    lower, below = 0.0, 0.0
    for le in bounds:
        count = max(below, buckets[le])
        if x < le:
            if le == math.inf:
                return (total - below) / total
            at_or_below = below + (count - below) * max(0.0, x - lower) / (le - lower)
            return (total - at_or_below) / total
        lower, below = le, count
    return (total - below) / total
