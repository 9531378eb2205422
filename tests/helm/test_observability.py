"""ServiceMonitors, SLO burn alerts and the dashboard: valid PromQL over metrics that exist."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics
from scheduler.pool import EndpointPool
from tests.helm.chart import CHART, EXAMPLES, Doc, load_values, of_kind, one, render

promql_parser = pytest.importorskip("promql_parser")

OBSERVABILITY = next(p for p in EXAMPLES if p.stem == "observability")
VLLM_METRICS = {
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
}


def gateway_metric_names() -> set[str]:
    """Every sample name the gateway exposes (counters with _total, histograms' parts)."""
    registry = CollectorRegistry()
    GatewayMetrics(registry, EndpointPool())
    names = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
    return names


def ttft_bucket_bounds() -> set[str]:
    """The ``le`` labels the gateway writes on its TTFT histogram."""
    registry = CollectorRegistry()
    GatewayMetrics(registry, EndpointPool()).first_token("m", 1.0)
    return {
        sample.labels["le"]
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "tidegate_time_to_first_token_seconds_bucket"
    }


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(tidegate_[a-z_]+|vllm:[a-z_]+)\b", expr)) - {"tidegate_dev"}


def rules(docs: list[Doc]) -> Iterator[Doc]:
    (rule,) = of_kind(docs, "PrometheusRule")
    for group in rule["spec"]["groups"]:
        yield from group["rules"]


def test_nothing_needs_the_prometheus_operator_unless_asked() -> None:
    kinds = {d["kind"] for d in render()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert not [d for d in render() if d["metadata"]["name"].endswith("-dashboard")]


def test_service_monitors_scrape_the_gateway_and_the_workers() -> None:
    docs = render(OBSERVABILITY)
    monitors = {m["metadata"]["name"]: m for m in of_kind(docs, "ServiceMonitor")}
    gateway = monitors["rel-tidegate-gateway"]
    service = one(docs, "Service", "rel-tidegate-gateway")
    assert (
        gateway["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    workers = monitors["rel-tidegate-workers"]
    worker_service = one(docs, "Service", "rel-tidegate-mistral-7b")
    assert (
        workers["spec"]["selector"]["matchLabels"].items()
        <= worker_service["metadata"]["labels"].items()
    )
    for monitor in monitors.values():
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["endpoints"][0]["port"] == "http"
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    targets = {r["targetLabel"] for r in workers["spec"]["endpoints"][0]["relabelings"]}
    assert targets == {"model", "pool", "capacity_type"}


def test_every_rule_is_valid_promql_over_the_gateways_metrics() -> None:
    docs = render(OBSERVABILITY)
    known = gateway_metric_names()
    recorded = {r["record"] for r in rules(docs) if "record" in r}
    for rule in rules(docs):
        promql_parser.parse(rule["expr"])
        used = metric_names(rule["expr"])
        assert used <= known, used - known
        if "alert" in rule:
            assert set(re.findall(r"tidegate:[a-z_]+:ratio_rate\w+", rule["expr"])) <= recorded


def test_burn_rate_alerts_cover_both_slos_with_page_and_ticket_windows() -> None:
    docs = render(OBSERVABILITY)
    alerts = [r for r in rules(docs) if "alert" in r]
    for name, budget in (("TidegateErrorBudgetBurn", 0.005), ("TidegateTTFTBudgetBurn", 0.05)):
        mine = [a for a in alerts if a["alert"] == name]
        windows = {(a["labels"]["long_window"], a["labels"]["severity"]) for a in mine}
        assert windows == {
            ("1h", "critical"),
            ("6h", "critical"),
            ("1d", "warning"),
            ("3d", "warning"),
        }
        page = next(a for a in mine if a["labels"]["long_window"] == "1h")
        assert f"> (14.4 * {budget})" in page["expr"]
    ttft = next(r for r in rules(docs) if r.get("record") == "tidegate:ttft_slow:ratio_rate5m")
    assert 'le="5.0"' in ttft["expr"]


def test_the_ttft_thresholds_offered_are_the_gateways_bucket_bounds() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    ttft = schema["properties"]["metrics"]["properties"]["prometheusRule"]["properties"]["ttft"]
    offered = set(ttft["properties"]["thresholdSeconds"]["enum"])
    assert offered <= ttft_bucket_bounds()
    assert (
        load_values(CHART / "values.yaml")["metrics"]["prometheusRule"]["ttft"]["thresholdSeconds"]
        in offered
    )


def test_the_dashboard_shows_what_operators_need_in_valid_promql() -> None:
    docs = render(OBSERVABILITY)
    dashboard_map = one(docs, "ConfigMap", "rel-tidegate-dashboard")
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(dashboard_map["data"]["tidegate.json"])
    known = gateway_metric_names() | VLLM_METRICS | {"up"}
    titles = [p["title"] for p in dashboard["panels"]]
    for wanted in (
        "Requests",
        "Errors",
        "first token",
        "Inter-token",
        "Queue",
        "KV cache",
        "per pool",
    ):
        assert any(wanted in t for t in titles), wanted
    used: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$namespace", "llm")
            promql_parser.parse(expr)
            used |= metric_names(expr)
    assert used <= known, used - known
    assert used >= VLLM_METRICS
