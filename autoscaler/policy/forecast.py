"""Demand a little ahead: the arrival rate projected over the time a new replica takes to
become ready, from the trend of recent rates.

Pure: given (time, requests/s) points, the least-squares slope over the last ``window_s``
projects the current rate ``lead_s`` ahead. Only a rising trend counts (a falling one
waits for the scale-down window anyway), and the projection is capped at ``max_gain``
times the current rate, so a noisy fit cannot buy a fleet for demand that never comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Forecast:
    rps: float
    slope_per_s: float


def projected_rate(
    points: Sequence[tuple[float, float]],
    now: float,
    current: float,
    *,
    lead_s: float,
    window_s: float,
    max_gain: float,
    min_points: int = 4,
) -> Forecast | None:
    """The rate expected ``lead_s`` from ``now``; None where the recent rates do not rise
    (or are too few, or span under half the window, to fit a trend)."""
    if lead_s <= 0 or current <= 0:
        return None
    recent = [(t, r) for t, r in points if now - window_s <= t <= now]
    if len(recent) < min_points or recent[-1][0] - recent[0][0] < window_s / 2:
        return None
    mean_t = sum(t for t, _ in recent) / len(recent)
    mean_r = sum(r for _, r in recent) / len(recent)
    spread = sum((t - mean_t) ** 2 for t, _ in recent)
    if spread <= 0:
        return None
    slope = sum((t - mean_t) * (r - mean_r) for t, r in recent) / spread
    if slope <= 0:
        return None
    return Forecast(min(current + slope * lead_s, current * max_gain), slope)
