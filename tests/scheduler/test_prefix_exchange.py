"""The pure half of the prefix-index exchange: merging peers' decisions, the bounded
buffer of own decisions, the wire encoding and its bounds."""

from __future__ import annotations

import random

import orjson
import pytest

from scheduler.config import SchedulerSettings, build_router
from scheduler.plugins.affinity import PrefixCostScorer, PrefixIndexScorer
from scheduler.prefix_exchange import (
    BatchError,
    ObservationBuffer,
    PrefixBatch,
    PrefixRecord,
    decode_batch,
    encode_batch,
    merge_batch,
    prefix_learners,
)
from scheduler.request import RoutingRequest
from tests.scheduler.support import ctx, ep

A, B = ep("http://a"), ep("http://b")


def _scores(index: PrefixIndexScorer | PrefixCostScorer, blocks: tuple[int, ...]) -> list[float]:
    return list(index.score(ctx([A, B], request=RoutingRequest("m", blocks)), [A, B]))


@pytest.mark.parametrize(
    ("merged", "query", "expected"),
    [
        ([("http://a", (1, 2, 3))], (1, 2, 3), [1.0, 0.0]),
        ([("http://a", (1, 2, 3))], (1, 2, 9, 9), [0.5, 0.0]),
        ([("http://a", (1,)), ("http://b", (1, 2))], (1, 2), [0.5, 1.0]),
        ([("http://a", ())], (1,), [0.0, 0.0]),
        ([("http://gone", (1, 2))], (1, 2), [0.0, 0.0]),
    ],
)
def test_merge_teaches_the_index_what_observe_would(merged, query, expected):
    merging, observing = PrefixIndexScorer(), PrefixIndexScorer()
    for url, blocks in merged:
        merging.merge(url, blocks)
        observing.observe(ctx([A, B], request=RoutingRequest("m", blocks)), ep(url))
    assert _scores(merging, query) == _scores(observing, query) == expected


def test_merge_is_bounded_like_observe_and_keeps_the_newest_blocks():
    index = PrefixIndexScorer(capacity=3)
    index.merge("http://a", (1, 2, 3))
    index.merge("http://a", (4, 5))
    assert index.blocks_held("http://a") == 3
    assert _scores(index, (3,)) == [1.0, 0.0]
    assert _scores(index, (1,)) == [0.0, 0.0]


def test_the_cost_scorer_merges_into_its_own_index():
    scorer = PrefixCostScorer()
    scorer.merge("http://b", (7, 8))
    request = RoutingRequest("m", (7, 8), prompt_tokens=1000)
    assert list(scorer.score(ctx([A, B], request=request), [A, B])) == [0.0, 1.0]


@pytest.mark.parametrize(
    ("capacity", "added", "taken", "left", "dropped"),
    [
        (5, 3, 10, 0, 0),
        (5, 3, 2, 1, 0),
        (3, 5, 10, 0, 2),
        (1, 4, 1, 0, 3),
    ],
)
def test_the_buffer_is_bounded_and_drops_the_oldest(capacity, added, taken, left, dropped):
    buffer = ObservationBuffer(capacity)
    for i in range(added):
        buffer.add(PrefixRecord("http://a", (i,)))
    out = buffer.take(taken)
    kept = min(added, capacity)
    assert [r.blocks[0] for r in out] == list(range(added - kept, added))[:taken]
    assert (len(buffer), buffer.dropped) == (left, dropped)


def test_the_buffer_observes_decisions_and_skips_prompts_without_blocks():
    buffer = ObservationBuffer(10)
    buffer.observe(ctx([A], request=RoutingRequest("m", (1, 2))), A)
    buffer.observe(ctx([A], request=RoutingRequest("m", ())), A)
    assert buffer.take(10) == (PrefixRecord("http://a", (1, 2)),)


def test_the_router_reports_decisions_of_learning_profiles_only():
    buffer = ObservationBuffer(10)
    settings = SchedulerSettings(default_profile="prefix-aware")
    router = build_router(settings, also_observe=buffer)
    request = RoutingRequest("m", (5, 6))
    router.route(ctx([A, B], request=request), random.Random(0), "least-queue")
    assert len(buffer) == 0
    decision = router.route(ctx([A, B], request=request), random.Random(0))
    assert buffer.take(10) == (PrefixRecord(decision.endpoint.url, (5, 6)),)
    (learner,) = prefix_learners(router)  # profiles share one prefix index
    assert isinstance(learner, PrefixIndexScorer)


@pytest.mark.parametrize(
    "records",
    [
        (),
        (PrefixRecord("http://a", (0,)),),
        (PrefixRecord("http://a", (1, 2**32 - 1)), PrefixRecord("http://b:8000", (3,) * 50)),
    ],
)
def test_a_batch_round_trips(records):
    batch = PrefixBatch("replica-1", records)
    assert decode_batch(encode_batch(batch), max_records=10, max_blocks=50) == batch


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[]", "version"),
        ({"v": 2, "replica": "r", "records": []}, "version"),
        ({"v": 1, "records": []}, "names no replica"),
        ({"v": 1, "replica": "r", "records": {}}, "must be a list"),
        ({"v": 1, "replica": "r", "records": [["u", [1]]] * 3}, "more than the 2"),
        ({"v": 1, "replica": "r", "records": [["u"]]}, "must be"),
        ({"v": 1, "replica": "r", "records": [["", [1]]]}, "url"),
        ({"v": 1, "replica": "r", "records": [["u", [1, 2, 3, 4]]]}, "at most 3"),
        ({"v": 1, "replica": "r", "records": [["u", [-1]]]}, "32-bit"),
        ({"v": 1, "replica": "r", "records": [["u", [2**32]]]}, "32-bit"),
        ({"v": 1, "replica": "r", "records": [["u", ["1"]]]}, "32-bit"),
        ({"v": 1, "replica": "r", "records": [["u", [True]]]}, "32-bit"),
    ],
)
def test_a_malformed_or_oversized_batch_is_rejected(payload, problem):
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    with pytest.raises(BatchError, match=problem):
        decode_batch(data, max_records=2, max_blocks=3)


@pytest.mark.parametrize(("sender", "merged"), [("peer", 2), ("me", 0)])
def test_merge_batch_applies_peers_records_to_every_learner(sender, merged):
    learners = (PrefixIndexScorer(), PrefixIndexScorer())
    batch = PrefixBatch(sender, (PrefixRecord("http://a", (1, 2)), PrefixRecord("http://b", (3,))))
    assert merge_batch(learners, batch, own_replica="me") == merged
    for learner in learners:
        assert learner.blocks_held("http://a") == (2 if merged else 0)
        assert learner.blocks_held("http://b") == (1 if merged else 0)
