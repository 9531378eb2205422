"""The demand forecast: a rising trend of arrival rates projected over the lead time."""

from __future__ import annotations

import pytest

from autoscaler.policy.forecast import projected_rate
from autoscaler.policy.observation import Observation, Slo
from autoscaler.policy.pipeline import Behavior, History, decide


def ramp(per_min: float, start: float = 10.0, until: float = 600.0) -> list[tuple[float, float]]:
    """Rates every 15 s up to ``until``, rising ``per_min`` req/s per minute."""
    return [(t, start + per_min * t / 60) for t in range(0, int(until) + 1, 15)]


@pytest.mark.parametrize(
    ("points", "current", "kw", "expected"),
    [
        # 1 req/s per minute for 6 minutes ahead: 20 -> 26
        (ramp(1.0), 20.0, {}, 26.0),
        (ramp(1.0), 20.0, {"lead_s": 120.0}, 22.0),
        (ramp(10.0), 20.0, {}, 30.0),  # capped at 1.5x the current rate
        (ramp(-1.0, start=30.0), 20.0, {}, None),  # falling: demand as it is
        ([(t, 20.0) for t in range(0, 601, 15)], 20.0, {}, None),  # flat
        (ramp(1.0)[-3:], 20.0, {}, None),  # three points are no trend
        ([p for p in ramp(1.0) if p[0] >= 360], 20.0, {}, None),  # under half the window
        (ramp(1.0), 20.0, {"lead_s": 0.0}, None),  # off
        (ramp(1.0), 0.0, {}, None),  # nothing arriving now
    ],
)
def test_projected_rate(points, current, kw, expected):
    settings = {"lead_s": 360.0, "window_s": 600.0, "max_gain": 1.5, **kw}
    ahead = projected_rate(points, 600.0, current, **settings)
    if expected is None:
        assert ahead is None
    else:
        assert ahead is not None and ahead.rps == pytest.approx(expected)


def test_only_the_window_is_fitted():
    # A fall long ago, then a steady rise over the last ten minutes.
    old = [(t, 100.0 - t / 10) for t in range(-1200, 0, 15)]
    ahead = projected_rate([*old, *ramp(1.0)], 600.0, 20.0, lead_s=60.0, window_s=600.0, max_gain=2)
    assert ahead is not None and ahead.slope_per_s == pytest.approx(1 / 60)


def test_the_pipeline_scales_for_the_projected_rate_and_says_so():
    slo = Slo(ttft_p95_s=1.0, itl_p95_s=0.05)
    ahead = Behavior(forecast_lead_s=360.0, scale_down_window_s=0, max_scale_up_per_min=100)
    history = History(arrivals=tuple(ramp(1.0, until=585.0)), last_replicas=10)
    obs = Observation(600.0, 10, arrival_rps=20.0)  # 10 at 2 req/s each; 26 in 6 min
    decision = decide(obs, slo, 2.0, ahead, history)
    assert decision.replicas == 13 and decision.decided_by.name == "forecast"
    assert "26.00 req/s in 360s" in decision.decided_by.why
    # Off by default: demand as it is now.
    assert decide(obs, slo, 2.0, Behavior(scale_down_window_s=0), history).replicas == 10


def test_history_keeps_the_observed_rates():
    slo = Slo(ttft_p95_s=1.0, itl_p95_s=0.05)
    history = History()
    for t in (0.0, 15.0):
        obs = Observation(t, 2, arrival_rps=4.0 + t)
        history = history.record(decide(obs, slo, 2.0, Behavior(), history), t, arrival_rps=4.0 + t)
    assert history.arrivals == ((0.0, 4.0), (15.0, 19.0))
