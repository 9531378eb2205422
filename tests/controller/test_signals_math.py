"""Reading signals, the pure parts: counter and bucket deltas, percentiles as Prometheus
computes them, the gateway's own /metrics page, two-scrape windows, PromQL and its
answers."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from autoscaler.signals.exposition import GatewayCounters, parse_gateway_page
from autoscaler.signals.histogram import bucket_delta, counter_delta, quantile, share_above
from autoscaler.signals.promql import QueryError, model_queries, scalar_of
from autoscaler.signals.window import Scrape, observe_model, pick_baseline
from gateway.metrics import GatewayMetrics
from scheduler.pool import EndpointPool

INF = math.inf


@pytest.mark.parametrize(
    ("before", "after", "delta"),
    [(10, 25, 15), (10, 10, 0), (10, 4, 4), (0, 0, 0)],  # 25 < 10: restarted, 4 are new
)
def test_counter_delta(before: float, after: float, delta: float) -> None:
    assert counter_delta(before, after) == delta


@pytest.mark.parametrize(
    ("before", "after", "delta"),
    [
        ({1.0: 2, INF: 4}, {1.0: 5, INF: 10}, {1.0: 3, INF: 6}),
        ({}, {1.0: 5, INF: 10}, {1.0: 5, INF: 10}),  # a new series started at zero
        ({1.0: 5, INF: 10}, {1.0: 1, INF: 2}, {1.0: 1, INF: 2}),  # restarted
    ],
)
def test_bucket_delta(
    before: dict[float, float], after: dict[float, float], delta: dict[float, float]
) -> None:
    assert bucket_delta(before, after) == delta


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.95, {0.5: 0, 1.0: 100, INF: 100}, 0.975),  # all in (0.5, 1]: interpolated
        (0.5, {0.1: 50, 0.2: 100, INF: 100}, 0.1),
        (0.95, {0.1: 50, 0.2: 100, INF: 100}, 0.19),
        (0.5, {1.0: 100, INF: 100}, 0.5),  # the first bucket starts at 0
        (0.95, {1.0: 10, 2.5: 10, INF: 100}, 2.5),  # rank in +Inf: the highest finite bound
        (0.95, {1.0: 0, INF: 0}, None),  # no observations
        (0.95, {1.0: 3}, None),  # no +Inf bucket
        (0.95, {}, None),
        (0.0, {0.5: 0, 1.0: 10, INF: 10}, 0.5),
        (1.0, {0.5: 5, 1.0: 10, INF: 10}, 1.0),
    ],
)
def test_quantile_like_histogram_quantile(
    q: float, buckets: dict[float, float], expected: float | None
) -> None:
    result = quantile(q, buckets)
    assert result == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("x", "buckets", "expected"),
    [
        (1.0, {0.5: 50, 1.0: 90, 2.0: 100, INF: 100}, 0.1),  # on a bound: exact
        (0.5, {0.5: 50, 1.0: 90, 2.0: 100, INF: 100}, 0.5),
        (0.75, {0.5: 50, 1.0: 90, 2.0: 100, INF: 100}, 0.3),  # halfway through 50..90
        (0.25, {0.5: 50, 1.0: 90, 2.0: 100, INF: 100}, 0.75),  # first bucket starts at 0
        (5.0, {0.5: 50, 1.0: 90, 2.0: 100, INF: 100}, 0.0),
        (5.0, {1.0: 90, INF: 100}, 0.1),  # beyond the last bound: the +Inf bucket's own
        (-1.0, {1.0: 90, INF: 100}, 1.0),
        (1.0, {1.0: 0, INF: 0}, None),  # no observations
        (1.0, {1.0: 5}, None),  # no +Inf bucket
        (1.0, {}, None),
    ],
)
def test_share_above_a_target(x: float, buckets: dict[float, float], expected: float) -> None:
    result = share_above(x, buckets)
    assert result == (None if expected is None else pytest.approx(expected))


def test_a_quantile_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError):
        quantile(95, {1.0: 1, INF: 1})


def gateway_page(requests: int, ttft_s: float, itl_s: float, model: str = "llama") -> str:
    """A /metrics page exactly as the gateway writes it."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, EndpointPool())
    for i in range(requests):
        metrics.request_done(model, "chat", 200 if i % 10 else 429, 0.5)
        metrics.first_token(model, ttft_s)
        metrics.inter_token(model, itl_s, events=2)
        metrics.time_per_output_token(model, itl_s)
    metrics.request_done("other", "chat", 200, 0.1)
    return generate_latest(registry).decode()


def test_the_gateways_page_gives_requests_and_buckets_per_model() -> None:
    counters = parse_gateway_page(gateway_page(20, ttft_s=0.3, itl_s=0.03))
    assert counters.requests == {"llama": 20.0, "other": 1.0}  # every route and status
    assert counters.ttft["llama"][INF] == 20 and counters.ttft["llama"][0.25] == 0
    assert counters.ttft["llama"][0.5] == 20
    assert counters.itl["llama"][INF] == 40
    assert counters.tpot["llama"][INF] == 20 and counters.tpot["llama"][0.03] == 20
    assert counters.held == {}
    assert parse_gateway_page("") == GatewayCounters()


def test_held_requests_are_read_when_a_gateway_exposes_them() -> None:
    page = 'tidegate_admission_queued_requests{model="llama"} 7\n# HELP x y\nx 1\n'
    assert parse_gateway_page(page).held == {"llama": 7.0}


def scrape(at: float, gateways: dict[str, Any], waiting: float | None = None) -> Scrape:
    parsed = {
        url: None if page is None else parse_gateway_page(page) for url, page in gateways.items()
    }
    if waiting is None:
        return Scrape(at, parsed)
    return Scrape(at, parsed, {"llama": waiting}, workers_answered=2)


def test_two_scrapes_give_the_rate_and_the_percentiles_between_them() -> None:
    before = scrape(100, {"g1": gateway_page(10, 0.3, 0.03), "g2": gateway_page(5, 2.0, 0.03)})
    after = scrape(
        130, {"g1": gateway_page(40, 0.3, 0.03), "g2": gateway_page(35, 2.0, 0.03)}, waiting=6
    )
    obs = observe_model("llama", 3, after, before)
    assert obs.arrival_rps == pytest.approx((30 + 30) / 30)
    assert obs.ttft_p95_s == pytest.approx(2.5 - 1.5 * (60 - 57) / 30)  # in (1, 2.5]
    assert obs.itl_p95_s == pytest.approx(0.03 - 0.01 * (120 - 114) / 120)  # in (0.02, 0.03]
    # the window's histograms: 60 requests, g2's 30 over 1 s
    assert obs.ttft_buckets[-1] == (INF, 60) and obs.itl_buckets[-1] == (INF, 60)
    assert dict(obs.ttft_buckets)[1.0] == 30
    assert (obs.queued, obs.fresh, obs.ready_replicas, obs.at) == (6, True, 3, 130)


@pytest.mark.parametrize(
    ("before", "after", "fresh", "arrival"),
    [
        ({"g1": 10}, {"g1": 40}, True, 1.0),
        ({"g1": 10, "g2": None}, {"g1": 40, "g2": 40}, False, 1.0),  # g2's requests unknown
        ({"g1": 10, "g2": 10}, {"g1": 40, "g2": None}, False, 1.0),  # g2 down now
        ({"g1": 40}, {"g1": 10}, True, 10 / 30),  # g1 restarted
    ],
)
def test_a_gateway_missing_from_either_scrape_makes_the_signals_stale(
    before: dict[str, int | None], after: dict[str, int | None], fresh: bool, arrival: float
) -> None:
    def pages(counts: dict[str, int | None]) -> dict[str, str | None]:
        return {u: None if n is None else gateway_page(n, 0.3, 0.03) for u, n in counts.items()}

    obs = observe_model("llama", 2, scrape(130, pages(after)), scrape(100, pages(before)))
    assert (obs.fresh, obs.arrival_rps) == (fresh, pytest.approx(arrival))


def test_without_a_baseline_there_is_no_rate_yet() -> None:
    latest = scrape(100, {"g1": gateway_page(10, 0.3, 0.03)}, waiting=2)
    obs = observe_model("llama", 2, latest, None)
    assert (obs.arrival_rps, obs.ttft_p95_s, obs.queued, obs.fresh) == (None, None, 2, True)
    idle = observe_model("llama", 2, scrape(130, {"g1": gateway_page(10, 0.3, 0.03)}), latest)
    assert (idle.arrival_rps, idle.ttft_p95_s, idle.queued) == (0.0, None, None)


def test_the_baseline_is_the_oldest_scrape_inside_the_window() -> None:
    scrapes = [Scrape(t, {}) for t in (0, 30, 60, 90)]
    assert pick_baseline(scrapes, 100, 60) is scrapes[2]
    assert pick_baseline(scrapes, 100, 5) is None
    assert pick_baseline([], 100, 60) is None


def test_the_queries_are_valid_promql_over_the_gateways_metrics() -> None:
    promql_parser = pytest.importorskip("promql_parser")
    q = model_queries('we"ird\\model', 120)
    for expr in (q.arrival, q.ttft, q.itl, q.waiting, q.held):
        promql_parser.parse(expr)
    assert q.arrival == 'sum(rate(tidegate_requests_total{model="we\\"ird\\\\model"}[120s]))'
    assert q.ttft.startswith(
        "histogram_quantile(0.95, sum by (le) (rate(tidegate_time_to_first_token"
    )
    assert q.waiting == 'sum(vllm:num_requests_waiting{model_name="we\\"ird\\\\model"})'


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {}, "value": [1.7e9, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (vector("2.5"), 2.5),
        (vector(), None),
        (vector("NaN"), None),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "3"]}}, 3.0),
    ],
)
def test_an_answer_gives_one_number_or_none(answer: dict[str, Any], expected: float | None) -> None:
    assert scalar_of(answer) == expected


@pytest.mark.parametrize(
    "answer",
    [
        {"status": "error", "errorType": "bad_data", "error": "parse error"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        vector("1", "2"),
        vector("many"),
        "not json",
    ],
)
def test_a_bad_answer_is_a_query_error(answer: Any) -> None:
    with pytest.raises(QueryError):
        scalar_of(answer)
