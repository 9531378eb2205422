"""Table-driven tests of each plugin, and the contract every scorer keeps."""

from __future__ import annotations

import random

import pytest

from scheduler.framework import RoutingContext
from scheduler.plugins.affinity import PrefixIndexScorer, RendezvousScorer
from scheduler.plugins.load import (
    InFlightScorer,
    KvCacheScorer,
    LoadCeilingFilter,
    QueueDepthScorer,
)
from scheduler.plugins.pickers import MaxScorePicker, PowerOfTwoPicker, WeightedRandomPicker
from scheduler.request import RoutingRequest
from tests.scheduler.support import ctx, ep

A, B, C = ep("a", 0), ep("b", 2), ep("c", 4)


@pytest.mark.parametrize(
    ("scorer", "endpoints", "in_flight", "expected"),
    [
        (QueueDepthScorer(), [A, B, C], {}, [1.0, 0.5, 0.0]),
        (QueueDepthScorer(), [A, B], {"a": 2}, [1.0, 1.0]),  # 0+2 == 2+0
        (QueueDepthScorer(), [ep("x", 3)], {}, [1.0]),
        (QueueDepthScorer(include_in_flight=False), [A, B], {"a": 9}, [1.0, 0.0]),
        (InFlightScorer(), [A, B, C], {"a": 4, "b": 0, "c": 2}, [0.0, 1.0, 0.5]),
        (InFlightScorer(), [A, B], {}, [1.0, 1.0]),
        (KvCacheScorer(), [ep("a", kv=0.25), ep("b", kv=1.0)], {}, [0.75, 0.0]),
    ],
)
def test_load_scorers(scorer, endpoints, in_flight, expected):
    assert list(scorer.score(ctx(endpoints, in_flight), endpoints)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("factor", "slack", "loads", "kept"),
    [
        (1.25, 1.0, {"a": 0, "b": 0, "c": 0}, "abc"),  # idle pool: nobody filtered
        (1.25, 0.0, {"a": 1, "b": 1, "c": 10}, "ab"),  # mean 4, ceiling 5
        (1.25, 1.0, {"a": 4, "b": 4, "c": 5}, "abc"),  # ceiling 1.25*4.33+1 = 6.4
        (1.5, 0.0, {"a": 0, "b": 0, "c": 3}, "ab"),  # mean 1, ceiling 1.5
    ],
)
def test_load_ceiling_filter(factor, slack, loads, kept):
    endpoints = [ep(u) for u in "abc"]
    out = LoadCeilingFilter(factor, slack).filter(ctx(endpoints, loads), endpoints)
    assert "".join(e.url for e in out) == kept


def request(blocks=(), session=None) -> RoutingRequest:
    return RoutingRequest(model="m", prefix_blocks=tuple(blocks), session=session)


def test_prefix_index_scores_the_cached_share_of_a_prompt():
    scorer = PrefixIndexScorer(capacity=100)
    endpoints = [ep("a"), ep("b")]
    scorer.observe(ctx(endpoints, request=request([1, 2, 3])), endpoints[0])
    scores = scorer.score(ctx(endpoints, request=request([1, 2, 3, 4])), endpoints)
    assert list(scores) == [0.75, 0.0]
    # A diverging prompt matches only the shared leading blocks.
    assert list(scorer.score(ctx(endpoints, request=request([1, 9, 3])), endpoints)) == [
        pytest.approx(1 / 3),
        0.0,
    ]
    assert list(scorer.score(ctx(endpoints, request=request()), endpoints)) == [0.0, 0.0]


def test_prefix_index_memory_is_bounded_lru():
    scorer = PrefixIndexScorer(capacity=3)
    a = ep("a")
    scorer.observe(ctx([a], request=request([1, 2, 3])), a)
    scorer.observe(ctx([a], request=request([1, 4])), a)  # 1 refreshed, 2 evicted
    assert scorer.blocks_held("a") == 3
    assert list(scorer.score(ctx([a], request=request([1, 2])), [a])) == [0.5]
    assert list(scorer.score(ctx([a], request=request([1, 4])), [a])) == [1.0]


def test_rendezvous_gives_each_key_one_home_and_the_same_home_everywhere():
    endpoints = [ep(f"http://w{i}") for i in range(8)]
    homes = {}
    for key in range(200):
        scores = RendezvousScorer("prefix", group_blocks=1).score(
            ctx(endpoints, request=request([key])), endpoints
        )
        assert sorted(scores) == [0.0] * 7 + [1.0]
        homes[key] = scores.index(1.0)
        again = RendezvousScorer("prefix", group_blocks=1).score(  # another replica
            ctx(list(reversed(endpoints)), request=request([key])), list(reversed(endpoints))
        )
        assert 7 - again.index(1.0) == homes[key]
    spread = [list(homes.values()).count(i) for i in range(8)]
    assert min(spread) >= 10, spread  # 200 keys over 8 homes, none starved


def test_rendezvous_moves_only_the_keys_of_a_removed_endpoint():
    endpoints = [ep(f"http://w{i}") for i in range(6)]
    scorer = RendezvousScorer("prefix", group_blocks=1)

    def home(eps, key):
        scores = scorer.score(ctx(eps, request=request([key])), eps)
        return eps[scores.index(1.0)].url

    before = {k: home(endpoints, k) for k in range(300)}
    after = {k: home(endpoints[1:], k) for k in range(300)}
    moved = {k for k in before if before[k] != after[k]}
    assert moved == {k for k in before if before[k] == "http://w0"}


@pytest.mark.parametrize(
    ("blocks", "group_blocks", "same_home_as"),
    [
        ([5, 6, 7, 8, 9], 4, [5, 6, 7, 8, 10]),  # differ after the group: same home
        ([5, 6], 4, [5, 6]),  # shorter than the group: the whole prompt is the key
    ],
)
def test_rendezvous_prefix_group(blocks, group_blocks, same_home_as):
    endpoints = [ep(f"http://w{i}") for i in range(8)]
    scorer = RendezvousScorer("prefix", group_blocks=group_blocks)
    first = scorer.score(ctx(endpoints, request=request(blocks)), endpoints)
    second = scorer.score(ctx(endpoints, request=request(same_home_as)), endpoints)
    assert first == second


def test_rendezvous_session_key_and_keyless_requests():
    endpoints = [ep(f"http://w{i}") for i in range(4)]
    scorer = RendezvousScorer("session")
    assert sum(scorer.score(ctx(endpoints, request=request(session="alice")), endpoints)) == 1
    assert sum(scorer.score(ctx(endpoints, request=request()), endpoints)) == 0


ALL_SCORERS = [
    QueueDepthScorer(),
    InFlightScorer(),
    KvCacheScorer(),
    PrefixIndexScorer(),
    RendezvousScorer("prefix"),
    RendezvousScorer("session"),
]


@pytest.mark.parametrize(
    "scorer", ALL_SCORERS, ids=lambda s: type(s).__name__ + getattr(s, "key", "")
)
@pytest.mark.parametrize("seed", range(5))
def test_scorer_contract(scorer, seed):
    """Every scorer: one score in [0, 1] per endpoint given, deterministic, any pool."""
    rng = random.Random(seed)
    endpoints = [
        ep(f"http://w{i}", rng.randint(0, 50), kv=rng.random()) for i in range(rng.randint(1, 12))
    ]
    in_flight = {e.url: rng.randint(0, 20) for e in endpoints}
    req = request(
        [rng.randrange(1 << 32) for _ in range(rng.randint(0, 6))],
        session=rng.choice([None, "s1", "s2"]),
    )
    context: RoutingContext = ctx(endpoints, in_flight, request=req)
    first = list(scorer.score(context, endpoints))
    assert len(first) == len(endpoints)
    assert all(0.0 <= s <= 1.0 for s in first)
    assert list(scorer.score(context, endpoints)) == first


@pytest.mark.parametrize(
    ("picker", "scores", "allowed"),
    [
        (MaxScorePicker(), [0.1, 0.9, 0.5], {1}),
        (MaxScorePicker(), [0.7, 0.2, 0.7], {0, 2}),
        (WeightedRandomPicker(), [0.0, 1.0, 0.0], {1}),
        (WeightedRandomPicker(), [0.0, 0.0], {0, 1}),
        (PowerOfTwoPicker(), [0.0, 1.0], {1}),
    ],
)
def test_pickers_choose_only_allowed(picker, scores, allowed):
    endpoints = [ep(f"w{i}") for i in range(len(scores))]
    seen = {picker.pick(ctx(endpoints), endpoints, scores, random.Random(s)) for s in range(50)}
    assert seen <= allowed
    assert seen == allowed or len(allowed) == 1 or isinstance(picker, PowerOfTwoPicker)


def test_weighted_random_follows_the_scores():
    endpoints = [ep("a"), ep("b")]
    rng = random.Random(3)
    picks = [
        WeightedRandomPicker().pick(ctx(endpoints), endpoints, [0.25, 0.75], rng)
        for _ in range(4000)
    ]
    assert 0.70 < picks.count(1) / 4000 < 0.80


def test_power_of_two_never_picks_the_worst_of_three_when_it_loses_both_duels():
    endpoints = [ep(f"w{i}") for i in range(3)]
    rng = random.Random(0)
    picks = {
        PowerOfTwoPicker().pick(ctx(endpoints), endpoints, [1.0, 0.5, 0.0], rng) for _ in range(200)
    }
    assert picks == {0, 1}
