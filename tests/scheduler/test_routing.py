"""The framework with the default ``least-queue`` profile: fewest waiting + in-flight."""

import random

import pytest

from scheduler.config import SchedulerSettings, build_router
from scheduler.framework import NoEndpointAvailable
from tests.scheduler.support import ctx, ep

ROUTER = build_router(SchedulerSettings())


def choose(endpoints, in_flight=None, exclude=(), seed=0):
    return ROUTER.route(ctx(endpoints, in_flight, exclude=exclude), random.Random(seed))


def test_default_profile_is_least_queue():
    assert ROUTER.default == "least-queue"


@pytest.mark.parametrize(
    ("endpoints", "in_flight", "expected", "depth"),
    [
        ([ep("a", 3), ep("b", 1)], {}, "b", 1),
        ([ep("a", 0), ep("b", 0)], {"a": 2, "b": 1}, "b", 1),
        ([ep("a", 1), ep("b", 0)], {"a": 0, "b": 2}, "a", 1),  # waiting + in flight
        ([ep("a", 0, healthy=False), ep("b", 9)], {}, "b", 9),  # unhealthy skipped
        ([ep("a", 0, age=6.0), ep("b", 9)], {}, "b", 9),  # stale probe skipped
        ([ep("a", 0, age=None), ep("b", 9)], {}, "b", 9),  # never probed skipped
        ([ep("a", 0, models=("other",)), ep("b", 9)], {}, "b", 9),  # model filter
    ],
)
def test_least_queue_picks(endpoints, in_flight, expected, depth):
    decision = choose(endpoints, in_flight)
    assert decision.endpoint.url == expected
    assert decision.queue_depth == depth


def test_exclusion_moves_to_next_best():
    assert choose([ep("a", 0), ep("b", 5)], exclude={"a"}).endpoint.url == "b"


@pytest.mark.parametrize(
    "endpoints",
    [[], [ep("a", healthy=False)], [ep("a", age=60)], [ep("a", models=("x",))]],
)
def test_no_candidate_raises(endpoints):
    with pytest.raises(NoEndpointAvailable):
        choose(endpoints)


def test_ties_are_broken_at_random_and_reproducibly():
    pool = [ep(u, 1) for u in "abcd"]
    picks = {choose(pool, seed=s).endpoint.url for s in range(40)}
    assert picks == set("abcd")
    assert choose(pool, seed=7).endpoint.url == choose(pool, seed=7).endpoint.url
