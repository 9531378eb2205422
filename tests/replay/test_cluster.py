"""The cluster model on a fake clock: provisioning delay, spot capacity windows, preemption
with notice, scale-down order and billing (hours of cluster time in microseconds)."""

from __future__ import annotations

import itertools

import pytest

from autoscaler.replay.cluster import ClusterModel
from autoscaler.replay.market import draw_market
from autoscaler.replay.pools import PoolSpec, parse_pools, spot_pool


def pool(name: str = "od", kind: str = "on-demand", **overrides: object) -> PoolSpec:
    base: dict[str, object] = {
        "name": name,
        "capacity_type": kind,
        "price_per_hour": 3.6,
        "node_launch_s": 100.0,
        "image_pull_s": 60.0,
        "model_load_s": 40.0,
    }
    return PoolSpec.model_validate(base | overrides)


def cluster(*pools: PoolSpec, horizon: float = 100_000.0) -> ClusterModel:
    return ClusterModel(pools, draw_market(pools, horizon, seed=1), seed=1)


def kinds(events: list) -> list[tuple[str, str]]:
    return [(e.kind, e.replica) for e in events]


@pytest.mark.parametrize(
    ("at", "ready", "starting", "pending"),
    [
        (10.0, 0, 2, 2),  # node launching: unschedulable
        (109.0, 0, 2, 2),
        (110.0, 0, 2, 0),  # on its node, pulling the image / loading the model
        (209.0, 0, 2, 0),
        (210.0, 2, 0, 0),  # 100 + 60 + 40 s after it was asked for
    ],
)
def test_provisioning_takes_node_image_and_model_load(at, ready, starting, pending):
    c = cluster(pool())
    assert c.set_desired("od", 2, 10.0) == []
    c.advance(at)
    status = c.status(at)[0]
    assert (status.ready, status.starting, status.pending) == (ready, starting, pending)
    assert status.pending_since == (10.0 if pending else None)


def test_ready_events_come_at_the_end_of_provisioning():
    c = cluster(pool())
    c.set_desired("od", 2, 0.0)
    assert c.next_event_at() == 200.0
    assert c.advance(199.9) == []
    assert kinds(c.advance(200.0)) == [("ready", "od-1"), ("ready", "od-2")]


def test_spot_asked_while_unavailable_stays_pending_and_is_not_billed():
    spot = pool("spot", "spot", unavailable_windows=((0.0, 1000.0),))
    c = cluster(spot)
    c.set_desired("spot", 1, 100.0)
    c.advance(999.0)
    status = c.status(999.0)[0]
    assert (status.pending, status.starting, status.pending_since) == (1, 0, 100.0)
    assert c.cost(999.0) == {"spot": 0.0}
    c.advance(1000.0)  # capacity is back: the node launches now
    assert c.status(1000.0)[0].starting == 1
    assert kinds(c.advance(1200.0)) == [("ready", "spot-1")]
    assert c.replica_seconds(1300.0) == {"spot": pytest.approx(300.0)}


def test_mass_preemption_gives_notice_replaces_at_once_and_the_node_goes_later():
    spot = pool(
        "spot",
        "spot",
        notice_s=120.0,
        mass_preemptions_at=(500.0,),
        mass_preemption_share=1.0,
        unavailable_after_mass_s=300.0,
    )
    c = cluster(spot)
    c.warm_start({"spot": 2}, 0.0)
    events = c.advance(500.0)
    assert sorted(kinds(events)) == [("notice", "spot-1"), ("notice", "spot-2")]
    status = c.status(500.0)[0]
    # replacements asked for at once, but spot capacity went with the preemption
    assert (status.ready, status.leaving, status.pending, status.pending_since) == (0, 2, 2, 500.0)
    assert (c.preemptions, c.mass_preemptions) == (2, 1)
    gone = c.advance(620.0)
    assert sorted(kinds(gone)) == [("gone", "spot-1"), ("gone", "spot-2")]
    c.advance(800.0)  # capacity back: replacements launch and are ready 200 s later
    assert kinds(c.advance(1000.0)) == [("ready", "spot-3"), ("ready", "spot-4")]
    # billed: two nodes 0..620, two from 800
    assert c.replica_seconds(1000.0)["spot"] == pytest.approx(2 * 620 + 2 * 200)


def test_individual_preemptions_follow_the_hazard_and_spare_on_demand():
    spot = pool("spot", "spot", preemptions_per_replica_hour=3600.0)  # mean life 1 s
    c = cluster(spot, pool())
    c.warm_start({"spot": 3, "od": 3}, 0.0)
    events = c.advance(60.0)
    noticed = {e.replica for e in events if e.kind == "notice"}
    assert {"spot-1", "spot-2", "spot-3"} <= noticed
    assert not any(r.startswith("od") for r in noticed)
    assert c.preemptions >= 3


@pytest.mark.parametrize(
    ("target", "drained", "gone"),
    [
        (5, [], ["spot-6"]),  # the pending one first
        (4, [], ["spot-5", "spot-6"]),  # then the newest provisioning one
        (3, [], ["spot-4", "spot-5", "spot-6"]),
        (2, ["spot-3"], ["spot-4", "spot-5", "spot-6"]),  # then the newest ready one drains
    ],
)
def test_scale_down_takes_pending_then_provisioning_then_newest_ready(target, drained, gone):
    c = cluster(pool("spot", "spot", unavailable_windows=((1000.0, 2000.0),)))
    c.warm_start({"spot": 2}, 0.0)
    c.set_desired("spot", 3, 100.0)
    c.advance(300.0)  # spot-3 ready at 300
    c.set_desired("spot", 4, 900.0)  # spot-4 provisioning
    c.set_desired("spot", 5, 950.0)  # spot-5 provisioning
    c.set_desired("spot", 6, 1050.0)  # spot-6 pending: no capacity
    events = c.set_desired("spot", target, 1060.0)
    assert [e.replica for e in events if e.kind == "drain"] == drained
    assert sorted(r.id for r in c.departed) == gone


def test_drained_replica_stops_billing_when_empty():
    c = cluster(pool())
    c.warm_start({"od": 2}, 0.0)
    (event,) = c.set_desired("od", 1, 1800.0)
    assert (event.kind, event.replica) == ("drain", "od-2")
    c.drained("od-2", 2700.0)
    assert c.cost(3600.0) == {"od": pytest.approx(3.6 + 3.6 * 0.75)}
    assert c.actions == {"od": 1}
    assert c.set_desired("od", 1, 3000.0) == [] and c.actions == {"od": 1}  # no change


def test_market_is_drawn_once_per_seed_and_windows_are_merged():
    pools = [spot_pool()]
    a, b = draw_market(pools, 86_400.0 * 5, seed=3), draw_market(pools, 86_400.0 * 5, seed=3)
    assert a == b and a.mass_preemptions
    windows = a.unavailable["spot"]
    assert all(end > start for start, end in windows)
    assert all(w[1] < nxt[0] for w, nxt in itertools.pairwise(windows))
    for at, _ in a.mass_preemptions:  # spot capacity goes with every mass preemption
        assert not a.available("spot", at)
    assert draw_market(pools, 86_400.0 * 5, seed=4) != a


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (None, ["spot", "on-demand"]),
        ("on-demand", ["on-demand"]),
        ("[{name: a, capacity_type: spot, price_per_hour: 1}]", ["a"]),
    ],
)
def test_pools_from_presets_and_inline_yaml(spec, names):
    assert [p.name for p in parse_pools(spec)] == names


@pytest.mark.parametrize(
    "spec",
    [
        "[{name: a, capacity_type: spot, price_per_hour: 1, typo: 2}]",
        "[{name: a, capacity_type: reserved, price_per_hour: 1}]",
        "[]",
        "not-a-preset",
    ],
)
def test_bad_pools_are_refused(spec):
    with pytest.raises(ValueError):
        parse_pools(spec)


def test_a_warm_up_counts_no_actions_preemptions_or_node_hours():
    spot = spot_pool().model_copy(update={"mass_preemptions_at": (500.0,)})
    market = draw_market([spot], 1_000.0, seed=1).shifted(1_000.0)
    assert [at for at, _ in market.mass_preemptions] == [1_500.0]
    assert not market.available("spot", 1_500.0) and market.available("spot", 400.0)
    c = ClusterModel([spot], market, seed=1, count_from=1_000.0)
    c.warm_start({"spot": 2}, 0.0)
    c.set_desired("spot", 3, 600.0)  # during the warm-up: not an action
    c.set_desired("spot", 4, 1_200.0)
    assert c.actions == {"spot": 1}
    hours = c.replica_seconds(3_600.0, since=1_000.0)["spot"]
    assert hours < c.replica_seconds(3_600.0)["spot"]
    assert hours == pytest.approx(2 * 2_600.0 + min(2_600.0, 3_600.0 - 600.0) + 2_400.0)
    assert c.cost(3_600.0, since=1_000.0)["spot"] == pytest.approx(
        hours / 3600 * spot.price_per_hour
    )
