"""Slow start: a newly healthy worker's load is weighed up while it warms, so joining a busy
pool does not hand it every request until its queue matches the others'."""

import dataclasses
import random

import pytest

from scheduler.config import SchedulerSettings, build_router
from scheduler.framework import SLOW_START_FLOOR, RoutingContext
from tests.scheduler.support import NOW, ctx, ep

ROUTER = build_router(SchedulerSettings())


def joined(url: str, age: float | None, waiting: float = 0):
    """An endpoint healthy for ``age`` seconds (None: no healthy run known)."""
    since = None if age is None else NOW - age
    return dataclasses.replace(ep(url, waiting), healthy_since=since)


def with_slow_start(context: RoutingContext, seconds: float) -> RoutingContext:
    return dataclasses.replace(context, slow_start_s=seconds)


@pytest.mark.parametrize(
    ("age", "slow_start_s", "warmth"),
    [
        (0.0, 10.0, SLOW_START_FLOOR),  # just joined: the floor, never zero
        (0.5, 10.0, SLOW_START_FLOOR),  # still under the floor's share of the window
        (5.0, 10.0, 0.5),
        (10.0, 10.0, 1.0),
        (60.0, 10.0, 1.0),
        (0.0, 0.0, 1.0),  # off
        (None, 10.0, 1.0),  # no healthy run known (a snapshot built without one)
    ],
)
def test_warmth_ramps_linearly_from_the_floor(age, slow_start_s, warmth):
    endpoint = joined("a", age)
    context = with_slow_start(ctx([endpoint, joined("warm", 600.0)]), slow_start_s)
    assert context.warmth(endpoint) == pytest.approx(warmth)


@pytest.mark.parametrize(
    ("age", "depth", "load"),
    [
        (0.0, 0, 9.0),  # (0 + 1) / 0.1 - 1
        (0.0, 4, 49.0),
        (5.0, 4, 9.0),  # (4 + 1) / 0.5 - 1
        (20.0, 4, 4.0),  # warm: the depth itself
    ],
)
def test_load_weighs_the_depth_of_a_warming_worker(age, depth, load):
    endpoint = joined("a", age, waiting=depth)
    context = with_slow_start(ctx([endpoint, joined("warm", 600.0)]), 10.0)
    assert context.load(endpoint) == pytest.approx(load)
    assert context.depth(endpoint) == depth


def test_the_decision_reports_the_real_depth():
    endpoints = [joined("new", 0.0, waiting=2), joined("old", 60.0, waiting=40)]
    decision = ROUTER.route(with_slow_start(ctx(endpoints), 10.0), random.Random(0))
    assert decision.endpoint.url == "new"
    assert decision.queue_depth == 2


def burst_to_newcomer(slow_start_s: float, busy_depth: int = 60, requests: int = 200) -> int:
    """Requests a just-joined worker takes, in a burst arriving at once, before the first
    one goes to a busy worker (every pick counted in flight, as the gateway does)."""
    endpoints = [joined("new", 0.0), joined("old-1", 60.0), joined("old-2", 60.0)]
    in_flight = {"new": 0, "old-1": busy_depth, "old-2": busy_depth}
    rng = random.Random(0)
    for _ in range(requests):
        context = with_slow_start(ctx(endpoints, dict(in_flight)), slow_start_s)
        url = ROUTER.route(context, rng).endpoint.url
        if url != "new":
            break
        in_flight[url] += 1
    return in_flight["new"]


def test_a_joining_worker_is_not_handed_the_whole_burst():
    without = burst_to_newcomer(0.0)
    with_it = burst_to_newcomer(10.0)
    assert without == 60, "without slow start it takes requests until its depth is the others'"
    assert with_it == 6, "at a tenth of the weight, until (depth + 1) / 0.1 - 1 passes 60"


def test_workers_that_all_became_healthy_together_are_left_alike():
    # Probed a moment apart at start-up: min-max scoring would turn warmths of 0.5 and 0.51
    # into a full preference for one idle worker over the other.
    endpoints = [joined("a", 5.0), joined("b", 5.1)]
    context = with_slow_start(ctx(endpoints), 10.0)
    assert [context.load(e) for e in endpoints] == [0.0, 0.0]
    picks = {ROUTER.route(context, random.Random(seed)).endpoint.url for seed in range(20)}
    assert picks == {"a", "b"}


def test_only_a_warm_worker_of_the_same_model_turns_slow_start_on():
    other_model = dataclasses.replace(joined("other", 600.0), models=frozenset({"x"}))
    young = joined("a", 1.0)
    context = with_slow_start(ctx([young, other_model]), 10.0)
    assert context.warmth(young) == 1.0


def test_slow_start_must_not_be_negative():
    with pytest.raises(ValueError, match="slow_start_s"):
        SchedulerSettings(slow_start_s=-1)
