"""The replay's model of gateway replicas (bench/routing.py ``Replicas``): what each
replica's context carries, and when the others' prefix-index updates reach it."""

from __future__ import annotations

import dataclasses
import random

import pytest

from bench.routing import Replicas, _observers
from scheduler.config import SchedulerSettings, build_router
from scheduler.framework import Decision, RoutingContext
from scheduler.plugins.affinity import PrefixIndexScorer
from scheduler.request import RoutingRequest
from tests.scheduler.support import ctx, ep

ENDPOINTS = [ep("a"), ep("b")]


def _indexes(replicas: Replicas) -> list[PrefixIndexScorer]:
    found = []
    for router in replicas.routers:
        (index,) = [o for o in _observers(router) if isinstance(o, PrefixIndexScorer)]
        found.append(index)
    return found


def _route(replicas: Replicas, now: float, blocks: tuple[int, ...]) -> Decision:
    request = RoutingRequest(model="m", prefix_blocks=blocks)
    context = dataclasses.replace(ctx(ENDPOINTS, request=request), now=now)
    return replicas.route(context, random.Random(0))


def _prefix_aware() -> list:
    return [build_router(SchedulerSettings(default_profile="prefix-aware")) for _ in range(2)]


@pytest.mark.parametrize(
    ("exchange_s", "second_at", "peer_learned"),
    [
        (None, 5.0, False),  # no exchange: a replica learns only from its own decisions
        (1.0, 0.5, False),  # the batch of [0, 1) is not out yet
        (1.0, 1.0, True),  # delivered at the end of its interval
        (0.25, 0.3, True),
    ],
)
def test_exchange_delivers_peer_decisions_after_their_batch(exchange_s, second_at, peer_learned):
    replicas = Replicas(_prefix_aware(), exchange_s=exchange_s)
    first = _route(replicas, 0.1, (1, 2, 3)).endpoint.url  # replica 0
    _route(replicas, second_at, (9,))  # replica 1; delivery happens before it decides
    peer = _indexes(replicas)[1]
    assert (peer.blocks_held(first) >= 3) is peer_learned


def test_exchanged_index_steers_the_peer_to_the_same_worker():
    replicas = Replicas(_prefix_aware(), exchange_s=1.0)
    blocks = tuple(range(1, 17))
    first = _route(replicas, 0.1, blocks).endpoint.url
    second = _route(replicas, 1.5, blocks).endpoint.url
    assert second == first


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[RoutingContext] = []

    def route(self, context: RoutingContext, rng: random.Random) -> Decision:
        self.seen.append(context)
        return Decision(endpoint=context.snapshot.endpoints[0], queue_depth=0.0, score=0.0)


@pytest.mark.parametrize(
    ("count", "estimate", "shared", "expected"),
    [(3, True, False, 3), (3, False, False, 1), (3, True, True, 1), (1, True, False, 1)],
)
def test_each_replica_is_told_how_many_replicas_there_are(count, estimate, shared, expected):
    recorders = [_Recorder() for _ in range(count)]
    replicas = Replicas(list(recorders), shared_in_flight=shared, estimate_others=estimate)
    _route(replicas, 0.0, ())
    assert recorders[0].seen[0].gateway_replicas == expected
