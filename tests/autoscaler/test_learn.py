"""Capacity per replica learned online: each rule of the pure step, table-driven, and a
run that converges on a capacity the prior got wrong."""

from __future__ import annotations

import math

import pytest

from autoscaler.policy.learn import (
    CapacityEstimate,
    LearnSettings,
    learn,
    learned_capacity,
)
from autoscaler.policy.observation import Observation, Slo, miss_share, requests_in_window

SLO = Slo(ttft_p95_s=1.0, itl_p95_s=0.05)
# The rules at round numbers (the defaults are tuned in docs/replay.md): half the gap down,
# probing on, no spacing between moves.
ON = LearnSettings(rate_down=0.5, probe_step=0.05, spacing_s=0.0)
PRIOR = CapacityEstimate.seeded(2.0)


def seen(rps: float | None, ready: int = 4, ttft: float | None = 0.8, **kw: object) -> Observation:
    return Observation(0.0, ready, arrival_rps=rps, ttft_p95_s=ttft, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "obs", "settings", "rps", "why"),
    [
        ("within the SLO above it: up a fifth", seen(12.0), ON, 2.2, "within the SLO at 3.00"),
        ("within the SLO below it: consistent", seen(6.0), ON, 2.0, "consistent"),
        ("busy, far within the SLO: probe up", seen(7.0, ttft=0.4), ON, 2.1, "probing up"),
        ("not busy enough to probe", seen(6.0, ttft=0.4), ON, 2.0, "consistent"),
        # Over the SLO at x: capacity is at most 0.9x, half the gap closed per interval.
        ("over the SLO below it: down", seen(7.0, ttft=1.5), ON, 1.7875, "over the SLO at 1.75"),
        ("over the SLO at it: down too", seen(8.0, ttft=1.5), ON, 1.9, "over the SLO at 2.00"),
        ("ITL over the SLO counts too", seen(7.0, ttft=None, itl_p95_s=0.08), ON, 1.7875, "over"),
        ("over the SLO above it: consistent", seen(12.0, ttft=1.5), ON, 2.0, "consistent"),
        ("idle: nothing learned", seen(1.0, ttft=3.0), ON, 2.0, "idle at 0.25"),
        ("stale: nothing learned", seen(12.0, fresh=False), ON, 2.0, "stale or missing"),
        ("no rate: nothing learned", seen(None), ON, 2.0, "stale or missing"),
        ("no replica: nothing learned", seen(12.0, ready=0), ON, 2.0, "no ready replica"),
        ("no latency: nothing learned", seen(12.0, ttft=None), ON, 2.0, "no latency signal"),
        ("off", seen(12.0), LearnSettings(enabled=False), 2.0, "learning is off"),
        ("probing is off by default", seen(7.0, ttft=0.4), LearnSettings(), 2.0, "consistent"),
        (
            "held within the band",
            seen(400.0),
            LearnSettings(rate_up=1.0, band=1.5),
            3.0,
            "held within 1.5x",
        ),
        (
            "and below it",
            seen(2.0, ttft=9.0),
            LearnSettings(rate_down=1.0, band=1.5, idle_share=0.1, busy_share=0.2),
            2.0 / 1.5,
            "held within 1.5x",
        ),
    ],
)
def test_one_interval(
    name: str, obs: Observation, settings: LearnSettings, rps: float, why: str
) -> None:
    after = learn(PRIOR, obs, SLO, settings)
    assert after.rps == pytest.approx(rps), name
    assert why in after.why, after.why
    assert after.prior_rps == 2.0
    assert after.samples == (0 if after.rps == PRIOR.rps else 1)


def test_the_estimate_converges_on_a_capacity_the_prior_got_wrong() -> None:
    """A replica really serves 3 req/s within the SLO (latency climbs past it above that);
    the prior says 2 and then 5. Demand sizes the fleet from the estimate each interval.
    With probing on: without it, a low prior rises only as fast as scale-up lags show
    replicas doing more (the day-long replay in docs/replay.md measures that case)."""

    def run(prior: float, demand: float) -> CapacityEstimate:
        estimate = CapacityEstimate.seeded(prior)
        for i in range(60):
            ready = max(1, math.ceil(demand / estimate.rps))
            # Scale-up lag: the fleet trails demand by one replica every third interval.
            ready = max(1, ready - (i % 3 == 0))
            per_replica = demand / ready
            # Flat while the batch has room, then queueing: past the SLO above 3 req/s.
            ttft = 0.2 + 0.05 * per_replica if per_replica <= 3.0 else 1.0 + (per_replica - 3.0)
            obs = Observation(60.0 * i, ready, arrival_rps=demand, ttft_p95_s=ttft)  # a window each
            # The fleet changes every window here, so it settles within one.
            settings = LearnSettings(band=3.0, probe_step=0.05, settle_s=60.0)
            estimate = learn(estimate, obs, SLO, settings)
        return estimate

    low = run(2.0, 30.0)
    assert 2.7 < low.rps <= 3.6, low
    high = run(5.0, 30.0)
    assert 2.7 < high.rps <= 3.6, high
    assert low.samples > 0 and high.samples > 0


def test_resuming_bounds_the_saved_value_by_the_current_band() -> None:
    assert PRIOR.resumed(3.1, 7, ON).rps == 3.1
    assert PRIOR.resumed(9.0, 7, ON).rps == 4.0
    assert PRIOR.resumed(9.0, -3, ON).samples == 0


def test_a_policy_calls_it_with_one_line() -> None:
    estimate = learned_capacity(None, 2.0, seen(12.0), SLO, ON)
    assert estimate.rps == pytest.approx(2.2)
    again = learned_capacity(estimate, 2.0, seen(12.0), SLO, ON)
    assert again.rps == pytest.approx(2.36) and again.samples == 2
    assert again.describe() == "learned from 2 intervals, prior 2.00"
    assert CapacityEstimate.seeded(2.0).describe() == "the prior"


@pytest.mark.parametrize(
    "bad",
    [
        {"rate_up": 0.0},
        {"rate_down": 1.5},
        {"band": 0.5},
        {"idle_share": 0.9},
        {"probe_headroom": 1.0},
        {"backlog_per_replica": 0.0},
        {"backlog_hold_s": -1.0},
        {"settle_s": -1.0},
    ],
)
def test_settings_that_cannot_work_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LearnSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CapacityEstimate.seeded(0.0)


BUDGETED = Slo(ttft_p95_s=1.0, itl_p95_s=0.05, objective=0.99)


@pytest.mark.parametrize(
    ("name", "obs", "slo", "rps", "why"),
    [
        # With an objective and a miss share, the share against the 1% budget decides.
        (
            "half the budget, p95 over: up",
            seen(12.0, ttft=5.0, miss_share=0.005),
            BUDGETED,
            2.2,
            "within the SLO",
        ),
        (
            "twice the budget, p95 fine: down",
            seen(7.0, ttft=0.1, miss_share=0.02),
            BUDGETED,
            1.7875,
            "over the SLO",
        ),
        (
            "no objective: the p95s decide",
            seen(6.0, ttft=0.1, miss_share=0.02),
            SLO,
            2.0,
            "consistent",
        ),
        ("no miss share: the p95s decide", seen(7.0, ttft=1.5), BUDGETED, 1.7875, "over the SLO"),
    ],
)
def test_the_error_budget_decides_where_it_is_known(
    name: str, obs: Observation, slo: Slo, rps: float, why: str
) -> None:
    after = learn(PRIOR, obs, slo, ON)
    assert after.rps == pytest.approx(rps), name
    assert why in after.why, name


# The window's histograms as a gateway's metrics give them: 100 requests.
TTFT_WINDOW = ((0.5, 80.0), (1.0, 99.0), (math.inf, 100.0))  # 1% over 1 s
TPOT_WINDOW = ((0.04, 90.0), (0.06, 100.0), (math.inf, 100.0))  # 5% over 50 ms


@pytest.mark.parametrize(
    ("obs", "expected"),
    [
        (Observation(0.0, 4, miss_share=0.2, ttft_buckets=TTFT_WINDOW), 0.2),  # given wins
        (Observation(0.0, 4, ttft_buckets=TTFT_WINDOW, itl_buckets=TPOT_WINDOW), 0.06),
        (Observation(0.0, 4, ttft_buckets=TTFT_WINDOW), 0.01),  # no ITL histogram yet
        (Observation(0.0, 4, itl_buckets=((0.06, 0.0), (math.inf, 0.0))), None),  # empty
        (Observation(0.0, 4), None),
    ],
)
def test_the_miss_share_from_the_windows_histograms(
    obs: Observation, expected: float | None
) -> None:
    result = miss_share(obs, BUDGETED)
    assert result == (None if expected is None else pytest.approx(expected))


def test_histograms_let_the_error_budget_decide() -> None:
    # p95s within targets, but 6% of requests miss: six times the 1% budget -> down
    obs = Observation(
        0.0,
        4,
        arrival_rps=7.0,
        ttft_p95_s=0.9,
        itl_p95_s=0.045,
        ttft_buckets=TTFT_WINDOW,
        itl_buckets=TPOT_WINDOW,
    )
    assert "over the SLO" in learn(PRIOR, obs, BUDGETED, ON).why
    assert "over the SLO" not in learn(PRIOR, obs, SLO, ON).why  # without an objective


def test_a_move_waits_for_a_fresh_window_before_the_next() -> None:
    spaced = LearnSettings(spacing_s=60.0)
    moved = learn(PRIOR, seen(12.0), SLO, spaced)  # at 0 s: up
    assert moved.rps > 2.0 and moved.updated_at == 0.0
    again = Observation(45.0, 4, arrival_rps=12.0, ttft_p95_s=0.8)
    assert learn(moved, again, SLO, spaced).rps == moved.rps  # same requests, mostly
    later = Observation(60.0, 4, arrival_rps=12.0, ttft_p95_s=0.8)
    assert learn(moved, later, SLO, spaced).rps > moved.rps


def test_nothing_is_learned_while_the_ready_count_has_just_changed() -> None:
    spaced = LearnSettings(spacing_s=60.0, settle_s=60.0)
    settled = learn(PRIOR, Observation(0.0, 10, arrival_rps=4.0, ttft_p95_s=0.8), SLO, spaced)
    assert settled.ready == 10 and settled.ready_since is None  # no known start: settled
    # Half the fleet goes: the window still holds what ten replicas served, which read as
    # five replicas each within the SLO at 16 req/s would raise the estimate.
    halved = Observation(30.0, 5, arrival_rps=80.0, ttft_p95_s=0.8)
    after = learn(settled, halved, SLO, spaced)
    assert after.rps == 2.0 and "ready replicas changed" in after.why
    assert (after.ready, after.ready_since) == (5, 30.0)
    still = learn(after, Observation(75.0, 5, arrival_rps=80.0, ttft_p95_s=0.8), SLO, spaced)
    assert still.rps == 2.0  # 45 s of the 60 s window
    later = learn(still, Observation(90.0, 5, arrival_rps=12.0, ttft_p95_s=0.8), SLO, spaced)
    assert later.rps > 2.0 and later.ready_since == 30.0  # a full window on five


def test_nothing_is_learned_from_a_backlog_or_while_it_finishes() -> None:
    held = LearnSettings(spacing_s=0.0, backlog_hold_s=300.0)
    # Four replicas with 40 requests queued (over 8 each): the misses are the wait for an
    # earlier shortage, not what the replicas serve.
    over = {"arrival_rps": 7.0, "ttft_p95_s": 3.0}
    queued = learn(PRIOR, Observation(0.0, 4, queued=40.0, **over), SLO, held)  # type: ignore[arg-type]
    assert queued.rps == 2.0 and "backlog" in queued.why and queued.backlog_at == 0.0
    # The queue is gone, but the requests it delayed still finish and count.
    draining = learn(queued, Observation(240.0, 4, queued=2.0, **over), SLO, held)  # type: ignore[arg-type]
    assert draining.rps == 2.0 and "backlog cleared recently" in draining.why
    later = learn(draining, Observation(300.0, 4, queued=2.0, **over), SLO, held)  # type: ignore[arg-type]
    assert later.rps < 2.0 and "over the SLO" in later.why
    # At the threshold it is no backlog.
    at_limit = learn(PRIOR, Observation(0.0, 4, queued=32.0, **over), SLO, held)  # type: ignore[arg-type]
    assert at_limit.rps < 2.0


@pytest.mark.parametrize(
    ("requests", "over"),
    [
        # 2% missing against a 1% budget: over it only where the window holds enough
        # requests for that to be more than noise (2 standard deviations by default).
        (200.0, False),  # allowed 1% + 2 x 0.70% = 2.4%
        (10_000.0, True),  # allowed 1% + 2 x 0.10% = 1.2%
        (None, True),  # count unknown: the budget alone
    ],
)
def test_a_breach_of_the_budget_must_be_more_than_noise(requests: float | None, over: bool) -> None:
    obs = seen(7.0, ttft=0.1, miss_share=0.02, window_requests=requests)
    margin = LearnSettings(spacing_s=0.0, breach_z=2.0)
    after = learn(PRIOR, obs, BUDGETED, margin)
    assert (after.rps < 2.0) is over, after.why
    # ...while only a window within the budget itself says the replicas keep up.
    busier = seen(12.0, ttft=0.1, miss_share=0.02, window_requests=requests)
    near = learn(PRIOR, busier, BUDGETED, margin)
    assert near.rps == 2.0 and ("near the SLO" in near.why) is not over, near.why


def test_the_window_request_count_comes_from_the_ttft_histogram_where_not_given() -> None:
    assert requests_in_window(Observation(0.0, 4, ttft_buckets=TTFT_WINDOW)) == 100.0
    given = Observation(0.0, 4, ttft_buckets=TTFT_WINDOW, window_requests=7.0)
    assert requests_in_window(given) == 7.0
    assert requests_in_window(Observation(0.0, 4)) is None


def test_a_longer_settling_time_holds_learning_for_as_long() -> None:
    settings = LearnSettings(settle_s=180.0)
    first = learn(PRIOR, Observation(0.0, 4, arrival_rps=4.0, ttft_p95_s=0.8), SLO, settings)
    grown = learn(first, Observation(15.0, 5, arrival_rps=12.0, ttft_p95_s=3.0), SLO, settings)
    assert grown.ready_since == 15.0
    over = Observation(180.0, 5, arrival_rps=12.0, ttft_p95_s=3.0)  # 165 s on five
    assert learn(grown, over, SLO, settings).rps == 2.0
    later = Observation(195.0, 5, arrival_rps=9.0, ttft_p95_s=3.0)  # 180 s: settled
    assert learn(grown, later, SLO, settings).rps < 2.0
