import pytest

from autoscaler.policy.capacity import PoolState, SpotSettings, plan_capacity


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
