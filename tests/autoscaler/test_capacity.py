import pytest

from autoscaler.policy.capacity import PoolState, SpotSettings, plan_capacity, sustained_demand


def od(desired=0, ready=None, **kw):
    return PoolState(
        "od",
        "on-demand",
        4.0,
        kw.pop("min_replicas", 0),
        kw.pop("max", 20),
        desired,
        desired if ready is None else ready,
        **kw,
    )


def spot(desired=0, ready=None, name="spot", price=1.4, **kw):
    return PoolState(
        name,
        "spot",
        price,
        kw.pop("min_replicas", 0),
        kw.pop("max", 20),
        desired,
        desired if ready is None else ready,
        **kw,
    )


SETTINGS = SpotSettings(on_demand_floor=1, over_provision=0.0, fallback_after_s=120)


@pytest.mark.parametrize(
    ("wanted", "pools", "settings", "expected"),
    [
        (5, [od(), spot()], SETTINGS, {"od": 1, "spot": 4}),
        (
            5,
            [od(), spot()],
            SpotSettings(on_demand_floor=2, over_provision=0.5),
            {"od": 2, "spot": 5},
        ),  # 3 on spot + ceil(1.5) over-provision
        (5, [od(), spot(max=2)], SETTINGS, {"od": 3, "spot": 2}),  # spot pool full
        (
            5,
            [od(), spot(name="cheap", price=1.0, max=3), spot(name="dear", price=2.0)],
            SETTINGS,
            {"od": 1, "cheap": 3, "dear": 1},
        ),
        (0, [od(), spot()], SETTINGS, {"od": 0, "spot": 0}),
        (4, [od(min_replicas=2), spot()], SETTINGS, {"od": 2, "spot": 2}),
        (3, [od()], SETTINGS, {"od": 3}),  # no spot pools: all on-demand
    ],
)
def test_split(wanted, pools, settings, expected):
    plan = plan_capacity(wanted, pools, settings, now=1000.0)
    assert plan.replicas == expected
    assert plan.reasons or wanted == 0


def test_spot_pending_too_long_falls_back_to_on_demand():
    pools = [od(desired=1), spot(desired=4, ready=1, pending_since=800.0)]
    plan = plan_capacity(5, pools, SETTINGS, now=1000.0)  # pending 200 s > 120 s
    assert plan.replicas == {"od": 4, "spot": 1}
    assert any("pending" in r for r in plan.reasons)


def test_spot_pending_briefly_is_waited_for():
    pools = [od(desired=1), spot(desired=4, ready=1, pending_since=950.0)]
    assert plan_capacity(5, pools, SETTINGS, now=1000.0).replicas == {"od": 1, "spot": 4}


def test_return_to_spot_keeps_on_demand_until_spot_is_ready():
    # Spot is back (nothing pending) but only 1 of the 4 spot replicas is ready yet.
    pools = [od(desired=4), spot(desired=1, ready=1)]
    plan = plan_capacity(5, pools, SETTINGS, now=1000.0)
    assert plan.replicas == {"od": 4, "spot": 4}
    pools = [od(desired=4), spot(desired=4, ready=4)]
    assert plan_capacity(5, pools, SETTINGS, now=1060.0).replicas == {"od": 1, "spot": 4}


def test_paused_pool_is_left_alone_and_counts():
    pools = [od(desired=3, paused=True), spot()]
    plan = plan_capacity(5, pools, SETTINGS, now=0.0)
    assert plan.replicas == {"od": 3, "spot": 2}


NOW = 10_000.0
PREEMPTING = SpotSettings(
    on_demand_floor=1, over_provision=0.1, fallback_after_s=120, replacement_s=600
)


@pytest.mark.parametrize(
    ("name", "wanted", "pools", "expected", "reason"),
    [
        (
            "a noticed spot replica is replaced on spot at once",
            5,
            [od(desired=1), spot(desired=5, ready=5, lost=1, preemptions=(NOW,))],
            {"od": 1, "spot": 6},  # 4 + 1 over-provision + 1 replacement
            "+1 replacing replicas being lost",
        ),
        (
            "spot pending after a loss: on-demand at once",
            5,
            [od(desired=1), spot(desired=5, ready=3, pending_since=NOW - 10, preemptions=(NOW,))],
            {"od": 2, "spot": 3},  # held at 3 ready; the floor plus the 1 short
            "spot pending after 1 lost in 120s",
        ),
        (
            "and the noticed ones there are replaced on on-demand",
            5,
            [
                od(desired=1),
                spot(desired=5, ready=4, lost=2, pending_since=NOW - 10, preemptions=(NOW, NOW)),
            ],
            {"od": 3, "spot": 4},  # 4 held, 2 of them going: 2 usable + 2 on-demand
            "held at its 4 ready",
        ),
        (
            "pending without a recent loss still waits for the fallback period",
            5,
            [od(desired=1), spot(desired=5, ready=3, pending_since=NOW - 10)],
            {"od": 1, "spot": 5},
            "5 on spot",
        ),
        (
            "frequent preemption raises the over-provision",
            11,
            [od(desired=1), spot(desired=10, ready=10, preemptions=(NOW - 600,) * 5)],
            {"od": 1, "spot": 11},  # 5 per 10 replicas per hour x 10 min: 8.3% < 10%
            "11 on spot",
        ),
        (
            "very frequent preemption raises it more",
            11,
            [od(desired=1), spot(desired=10, ready=10, preemptions=(NOW - 600,) * 30)],
            {"od": 1, "spot": 15},  # 3 per replica-hour x 10 min: 50% of 10 on spot
            "spot over-provision 50%: 30 lost in 60 min",
        ),
        (
            "preemptions older than the window are forgotten",
            11,
            [od(desired=1), spot(desired=10, ready=10, preemptions=(NOW - 4000,) * 30)],
            {"od": 1, "spot": 11},
            "11 on spot",
        ),
    ],
)
def test_preemption(name, wanted, pools, expected, reason):
    plan = plan_capacity(wanted, pools, PREEMPTING, now=NOW)
    assert plan.replicas == expected, (name, plan.reasons)
    assert any(reason in r for r in plan.reasons), plan.reasons


def test_on_demand_is_kept_while_replacements_for_lost_spot_replicas_start():
    # On-demand carried 3 while spot came back; 2 of the 4 ready spot replicas are going.
    pools = [od(desired=3), spot(desired=4, ready=4, lost=2, preemptions=(NOW,))]
    plan = plan_capacity(5, pools, PREEMPTING, now=NOW)
    assert plan.replicas == {"od": 3, "spot": 7}  # 4 + 1 over-provision + 2 replacements


PADDED = SpotSettings(on_demand_floor=1, over_provision=0.3)


@pytest.mark.parametrize(
    ("name", "wanted", "demand", "spot_replicas"),
    [
        ("demand unknown: a share of the spot replicas", 5, None, 4 + 2),
        ("padding the demand rounds up once", 5, 4.2, 5),  # ceil(3.2 x 1.3) = 5
        ("near the top of the count: one more", 5, 4.9, 6),  # ceil(3.9 x 1.3) = 6
        ("a quiet night: the rounding is headroom enough", 3, 2.1, 2),  # ceil(1.1 x 1.3) = 2
        ("replicas held above the padded demand: no spare", 8, 3.0, 7),
        ("large fleets keep their share", 21, 20.0, 25),  # ceil(19 x 1.3) = 25
        ("no demand on spot", 1, 0.5, 0),
    ],
)
def test_spare_pads_demand(name, wanted, demand, spot_replicas):
    plan = plan_capacity(wanted, [od(), spot(max=40)], PADDED, now=NOW, demand=demand)
    assert plan.replicas == {"od": 1, "spot": spot_replicas}, (name, plan.reasons)


def test_spare_for_observed_preemptions_is_kept_above_the_padding():
    pools = [od(desired=1), spot(desired=10, ready=10, preemptions=(NOW - 600,) * 30)]
    plan = plan_capacity(11, pools, PADDED, now=NOW, demand=10.5)
    assert plan.replicas == {"od": 1, "spot": 15}  # 50% expected lost, over ceil(9.5 x 1.3)


@pytest.mark.parametrize(
    ("name", "arrivals", "at", "expected"),
    [
        ("the lowest rate of the window", [(0, 30.0), (60, 20.0), (120, 40.0)], 120, 2.0),
        ("older rates are out of it", [(0, 5.0), (60, 20.0), (180, 40.0)], 180, 2.0),
        ("not yet seen a whole window", [(30, 20.0), (120, 40.0)], 120, None),
        ("no rates", [], 120, None),
    ],
)
def test_sustained_demand(name, arrivals, at, expected):
    assert sustained_demand(arrivals, at, 120.0, 10.0) == expected, name
