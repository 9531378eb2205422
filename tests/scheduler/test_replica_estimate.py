"""Several gateway replicas: each estimates the in-flight requests of the others.

A replica counts only the requests it sent; with ``gateway_replicas`` R it takes the larger
of its own count x R and the worker's scraped running + waiting. One replica is unchanged.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scheduler.config import SchedulerSettings
from scheduler.plugins.affinity import PrefixCostScorer
from scheduler.plugins.load import InFlightScorer, LoadCeilingFilter, QueueDepthScorer
from scheduler.request import RoutingRequest
from tests.scheduler.support import ctx, ep


@pytest.mark.parametrize(
    ("replicas", "running", "waiting", "own", "in_flight", "load"),
    [
        (1, 9, 2, 3, 3, 5),  # one replica: its own count, scraped running ignored
        (1, 0, 0, 0, 0, 0),
        (3, 9, 2, 3, 11, 13),  # scraped 9 + 2 beats own 3 x 3
        (3, 1, 0, 2, 6, 6),  # own 2 x 3 beats scraped 1: sent since the last probe
        (3, 0, 0, 0, 0, 0),
        (2, 4, 0, 2, 4, 4),  # equal
    ],
)
def test_in_flight_estimate(replicas, running, waiting, own, in_flight, load):
    endpoint = ep("a", waiting, running=running)
    context = ctx([endpoint], {"a": own}, gateway_replicas=replicas)
    assert context.in_flight_of(endpoint) == in_flight
    assert context.load(endpoint) == load


def test_in_flight_estimate_without_stats_for_the_model_uses_own_count():
    endpoint = ep("a", 7, running=7, models=("other",))
    context = ctx([endpoint], {"a": 2}, gateway_replicas=3)
    assert context.in_flight_of(endpoint) == 6


@pytest.mark.parametrize(("replicas", "tokens"), [(1, 500), (3, 1500)])
def test_in_flight_tokens_scale_with_replicas(replicas, tokens):
    endpoint = ep("a")
    context = ctx([endpoint], {"a": 1}, in_flight_tokens={"a": 500}, gateway_replicas=replicas)
    assert context.in_flight_tokens_of(endpoint) == tokens


@pytest.mark.parametrize(
    ("scorer", "replicas", "expected"),
    [
        # a: scraped 6 running, own 0; b: scraped 0, own 1.
        (InFlightScorer(), 1, [1.0, 0.0]),  # alone: only its own counts
        (InFlightScorer(), 3, [0.0, 1.0]),  # 6 vs 3: a is the busier one
        (QueueDepthScorer(), 1, [1.0, 0.0]),
        (QueueDepthScorer(), 3, [0.0, 1.0]),
    ],
)
def test_load_scorers_read_the_estimate(scorer, replicas, expected):
    endpoints = [ep("a", running=6), ep("b")]
    context = ctx(endpoints, {"a": 0, "b": 1}, gateway_replicas=replicas)
    assert list(scorer.score(context, endpoints)) == pytest.approx(expected)


@pytest.mark.parametrize(("replicas", "kept"), [(1, "abc"), (3, "bc")])
def test_load_ceiling_sees_other_replicas_work(replicas, kept):
    # Own counts 0/0/0 look idle; a's scraped 12 running puts it over 1.5 x mean 4 + 0.
    endpoints = [ep("a", running=12), ep("b"), ep("c")]
    out = LoadCeilingFilter(1.5, 0.0).filter(
        ctx(endpoints, {}, gateway_replicas=replicas), endpoints
    )
    assert "".join(e.url for e in out) == kept


@pytest.mark.parametrize(("replicas", "expected"), [(1, [0.0, 1.0]), (3, [0.0, 1.0])])
def test_prefix_cost_reads_scaled_tokens(replicas, expected):
    endpoints = [ep("a"), ep("b")]
    request = RoutingRequest(model="m", prefix_blocks=(1, 2), prompt_tokens=100)
    context = ctx(endpoints, request=request, in_flight_tokens={"a": 50}, gateway_replicas=replicas)
    scores = PrefixCostScorer().score(context, endpoints)
    assert list(scores) == pytest.approx(expected)


@pytest.mark.parametrize(("value", "ok"), [(1, True), (3, True), (0, False), (-1, False)])
def test_gateway_replicas_setting_is_validated(value, ok):
    if ok:
        assert (
            SchedulerSettings.model_validate({"gateway_replicas": value}).gateway_replicas == value
        )
    else:
        with pytest.raises(ValidationError, match="gateway_replicas"):
            SchedulerSettings.model_validate({"gateway_replicas": value})


def test_gateway_replicas_defaults_to_one():
    assert SchedulerSettings().gateway_replicas == 1
