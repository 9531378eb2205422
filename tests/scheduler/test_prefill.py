"""Routing around workers whose prefill backlog is at the bound."""

from __future__ import annotations

import pytest

from scheduler.admission import SaturationPolicy
from scheduler.pool import EndpointPool
from scheduler.prefill import over_prefill_bound, skipping_full
from tests.scheduler.support import ctx, ep

BOUNDED = SaturationPolicy(max_prefill_tokens=1000)


@pytest.mark.parametrize(
    ("name", "backlog", "policy", "expected"),
    [
        ("no bound: nobody is full", {"a": 10**6}, SaturationPolicy(), set()),
        ("empty backlogs", {"a": 0, "b": 0}, BOUNDED, set()),
        ("just under the bound", {"a": 999}, BOUNDED, set()),
        ("at the bound: full", {"a": 1000, "b": 10}, BOUNDED, {"a"}),
        ("over it", {"a": 5000, "b": 1001}, BOUNDED, {"a", "b"}),
        (
            "every priority's rule keeps the bound",
            {"a": 1000},
            SaturationPolicy(
                max_running=4, slots_only_at_or_above=2, max_prefill_tokens=1000
            ).for_priority(2),
            {"a"},
        ),
    ],
)
def test_over_prefill_bound(name, backlog, policy, expected):
    assert over_prefill_bound(backlog, policy) == expected, name


@pytest.mark.parametrize(
    ("name", "endpoints", "exclude", "full", "excluded"),
    [
        ("nothing full: unchanged", ("a", "b"), (), set(), set()),
        ("one full of two: skipped", ("a", "b"), (), {"a"}, {"a"}),
        ("every worker full: none skipped", ("a", "b"), (), {"a", "b"}, set()),
        ("retry exclusions are kept", ("a", "b", "c"), ("c",), {"a"}, {"a", "c"}),
        ("the only one left after a retry is full", ("a", "b"), ("b",), {"a"}, {"b"}),
        ("a full worker that is stale elsewhere", ("a", "b"), (), {"a", "zombie"}, {"a", "zombie"}),
    ],
)
def test_skipping_full_never_empties_the_candidates(name, endpoints, exclude, full, excluded):
    context = ctx([ep(url) for url in endpoints], exclude=exclude)
    assert set(skipping_full(context, full).exclude) == excluded, name


def test_skipping_full_counts_only_eligible_endpoints():
    """A full worker beside a stale one: the stale one cannot take the request, so the
    full one is not skipped."""
    context = ctx([ep("a"), ep("b", age=30)])
    assert skipping_full(context, {"a"}) is context


def test_the_pool_counts_each_workers_backlog_until_its_first_token():
    pool = EndpointPool()
    pool.set_urls(["http://a", "http://b"])
    assert pool.prefill_tokens == {"http://a": 0, "http://b": 0}
    pool.start_prefill("http://a", 300)
    pool.start_prefill("http://a", 200)
    pool.end_prefill("http://a", 300)
    assert pool.prefill_tokens == {"http://a": 200, "http://b": 0}
    pool.set_urls(["http://b"])  # a leaves with a prompt still in prefill
    pool.end_prefill("http://a", 200)
    assert pool.prefill_tokens == {"http://b": 0}
    pool.end_prefill("http://b", 5)  # never below zero
    assert pool.prefill_tokens == {"http://b": 0}
