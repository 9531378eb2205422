"""Admission bounded by each worker's prefill backlog: prompt tokens sent to it that have
no first token back yet."""

import math

import pytest

from scheduler.admission import (
    SaturationPolicy,
    endpoint_saturation,
    pool_saturation,
    prefill_saturation,
)
from scheduler.endpoint import PoolSnapshot
from tests.scheduler.support import NOW, ep

BOUNDED = SaturationPolicy(queue_threshold=8, max_running=224, max_prefill_tokens=1024)
SLOTS = SaturationPolicy(
    queue_threshold=1,
    max_running=224,
    priority_headroom=((2, 32),),
    slots_only_at_or_above=2,
    max_prefill_tokens=1024,
)


@pytest.mark.parametrize(
    ("name", "tokens", "policy", "expected"),
    [
        ("no bound: never full", 10**9, SaturationPolicy(), 0.0),
        ("empty backlog", 0, BOUNDED, 0.0),
        ("half the bound", 512, BOUNDED, 0.5),
        ("at the bound: full", 1024, BOUNDED, 1.0),
        ("beyond it", 4096, BOUNDED, 4.0),
    ],
)
def test_prefill_saturation(name, tokens, policy, expected):
    assert prefill_saturation(tokens, policy) == expected, name


@pytest.mark.parametrize(
    ("name", "endpoint", "in_flight", "tokens", "policy", "expected"),
    [
        ("backlog dominates a short queue", ep("a", 2), 10, 768, BOUNDED, 0.75),
        ("queue dominates a small backlog", ep("a", 6), 10, 256, BOUNDED, 0.75),
        ("full backlog fills an idle-looking worker", ep("a", 0), 1, 2048, BOUNDED, 2.0),
        ("KV use still counts", ep("a", 0, kv=0.95), 1, 0, BOUNDED, 1.0),
        ("stale data is full whatever the backlog", ep("a", 0, age=30), 0, 0, BOUNDED, math.inf),
        ("critical on slots: the backlog still holds it", ep("a", 50), 100, 1024, SLOTS, 1.0),
        ("critical on slots: free slots, small backlog", ep("a", 50), 112, 256, SLOTS, 112 / 256),
        ("no bound set: tokens ignored", ep("a", 0), 0, 10**6, SaturationPolicy(), 0.0),
    ],
)
def test_endpoint_saturation_counts_the_backlog(
    name, endpoint, in_flight, tokens, policy, expected
):
    rule = policy.for_priority(2)
    value = endpoint_saturation(endpoint, "m", in_flight, NOW, 5.0, rule, tokens)
    assert value == pytest.approx(expected), name


def test_pool_has_room_while_any_worker_has_room_in_its_backlog():
    snapshot = PoolSnapshot((ep("a", 0), ep("b", 0), ep("c", 0, models=("other",))))
    in_flight = {"a": 5, "b": 5, "c": 0}
    full = {"a": 2048, "b": 1024, "c": 0}
    assert pool_saturation(snapshot, in_flight, "m", NOW, 5.0, BOUNDED, full) == 1.0
    some_room = {"a": 2048, "b": 256}
    assert pool_saturation(snapshot, in_flight, "m", NOW, 5.0, BOUNDED, some_room) == 0.25
    assert pool_saturation(snapshot, in_flight, "m", NOW, 5.0, BOUNDED) == 0.0  # none known


@pytest.mark.parametrize("priority", [0, 1, 2, 3])
def test_every_priority_keeps_the_bound(priority):
    assert SLOTS.for_priority(priority).max_prefill_tokens == 1024


@pytest.mark.parametrize("bad", [0, -1])
def test_a_bound_below_one_token_is_refused(bad):
    with pytest.raises(ValueError, match="max_prefill_tokens"):
        SaturationPolicy(max_prefill_tokens=bad)
