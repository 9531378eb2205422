"""SLO targets and the verdict, table-driven both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.names import METRIC_TYPES
from loadtests.slo import (
    Observations,
    SloError,
    StatsRow,
    Target,
    build_targets,
    collect,
    format_verdict,
    judge,
    load_slo_file,
    parse_slo_text,
    percentile,
)


@pytest.mark.parametrize(
    ("key", "value", "target"),
    [
        ("ttft_p95_ms", "500", Target("ttft_p95_ms", 500.0, "ttft", 95.0)),
        ("itl_p99.9_ms", 40, Target("itl_p99.9_ms", 40.0, "itl", 99.9)),
        ("e2e_p50_ms", 2e4, Target("e2e_p50_ms", 20000.0, "e2e", 50.0)),
        ("ttft_p100_ms", 1, Target("ttft_p100_ms", 1.0, "ttft", 100.0)),
        ("error_rate", "0.01", Target("error_rate", 0.01, "error_rate")),
        ("min_requests", 10, Target("min_requests", 10.0, "requests")),
    ],
)
def test_keys_parse(key, value, target):
    assert parse_slo_text(f"{key}={value}") == {key: target}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ttft_p95=500", "unknown SLO key 'ttft_p95'"),
        ("tpot_p95_ms=5", "unknown SLO key"),
        ("ttft_p101_ms=5", "unknown SLO key"),
        ("ttft_p95_ms", "not key=limit"),
        ("ttft_p95_ms=fast", "must be a number"),
        ("ttft_p95_ms=-1", ">= 0"),
        ("ttft_p95_ms=inf", "finite"),
        ("error_rate=5", "fraction"),
    ],
)
def test_bad_targets_are_refused_with_a_clear_message(text, message):
    with pytest.raises(SloError, match=message):
        parse_slo_text(text)


def test_text_accepts_commas_and_spaces():
    assert set(parse_slo_text(" ttft_p95_ms=1, itl_p95_ms=2 error_rate=0 ")) == {
        "ttft_p95_ms",
        "itl_p95_ms",
        "error_rate",
    }


def test_a_file_is_read_and_the_command_line_overrides_it(tmp_path):
    path = tmp_path / "slo.yaml"
    path.write_text("slo:\n  ttft_p95_ms: 500\n  error_rate: 0.01\n")
    assert set(load_slo_file(path)) == {"ttft_p95_ms", "error_rate"}
    targets = {t.key: t.limit for t in build_targets(path, "ttft_p95_ms=200")}
    assert targets == {"ttft_p95_ms": 200.0, "error_rate": 0.01, "min_requests": 1.0}


@pytest.mark.parametrize(("content", "message"), [("- a\n", "mapping"), ("a: [\n", "cannot")])
def test_a_bad_file_is_refused(tmp_path, content, message):
    path = tmp_path / "slo.yaml"
    path.write_text(content)
    with pytest.raises(SloError, match=message):
        load_slo_file(path)


def test_no_targets_means_no_verdict():
    assert build_targets(None, None) == ()
    assert build_targets(None, "") == ()


@pytest.mark.parametrize(
    ("histogram", "pct", "expected"),
    [
        ({10: 1, 20: 1, 30: 1, 40: 1}, 50, 20),
        ({10: 1, 20: 1, 30: 1, 40: 1}, 75, 30),
        ({10: 1, 20: 1, 30: 1, 40: 1}, 100, 40),
        ({10: 98, 500: 2}, 95, 10),
        ({10: 98, 500: 2}, 99, 500),
        ({7: 3}, 0, 7),
        ({}, 50, None),
    ],
)
def test_percentile_of_a_histogram(histogram, pct, expected):
    assert percentile(histogram, pct) == expected


GOOD = Observations(
    latencies_ms={"ttft": {100: 95, 900: 5}, "itl": {20: 99, 80: 1}, "e2e": {3000: 100}},
    requests=100,
    failures=1,
)


@pytest.mark.parametrize(
    ("slo", "passed", "observed"),
    [
        ("ttft_p95_ms=100", True, 100),
        ("ttft_p95_ms=99", False, 100),
        ("ttft_p96_ms=500", False, 900),
        ("itl_p99_ms=20", True, 20),
        ("itl_p100_ms=50", False, 80),
        ("e2e_p50_ms=3000", True, 3000),
        ("error_rate=0.01", True, 0.01),
        ("error_rate=0.005", False, 0.01),
        ("min_requests=100", True, 100),
        ("min_requests=101", False, 100),
    ],
)
def test_each_target_passes_or_fails_on_its_own_number(slo, passed, observed):
    (check,) = judge(tuple(parse_slo_text(slo).values()), GOOD).checks
    assert (check.passed, check.observed) == (passed, pytest.approx(observed))


def test_one_failed_target_fails_the_verdict():
    targets = tuple(parse_slo_text("ttft_p95_ms=100,itl_p99_ms=10").values())
    verdict = judge(targets, GOOD)
    assert [c.passed for c in verdict.checks] == [True, False]
    assert not verdict.passed
    assert judge(targets[:1], GOOD).passed


@pytest.mark.parametrize("slo", ["ttft_p95_ms=1000", "error_rate=1", "itl_p50_ms=1000"])
def test_a_target_without_data_fails(slo):
    nothing = Observations(latencies_ms={}, requests=0, failures=0)
    verdict = judge(tuple(parse_slo_text(slo).values()), nothing)
    assert not verdict.passed and verdict.checks[0].observed is None


def test_the_table_shows_every_check_and_the_result():
    targets = build_targets(None, "ttft_p95_ms=100,itl_p99_ms=10,error_rate=0.05")
    text = format_verdict(judge(targets, GOOD))
    lines = text.splitlines()
    assert lines[0] == "SLO verdict: FAIL"
    assert lines[1].split() == ["check", "target", "observed", "result"]
    body = "\n".join(lines[3:])
    assert "TTFT p95  " in body and "<= 100 ms" in body and "pass" in body
    assert "ITL p99" in body and "20 ms" in body and "FAIL" in body
    assert "error rate" in body and "1.00%" in body and "<= 5.00%" in body
    assert "requests" in body and ">= 1" in body
    nothing = Observations(latencies_ms={}, requests=0, failures=0)
    assert "no data" in format_verdict(judge(targets, nothing))
    assert format_verdict(judge(targets[:1], GOOD)).startswith("SLO verdict: PASS")


def test_rows_are_merged_per_metric_and_only_requests_count_as_requests():
    rows = [
        StatsRow("POST", {100: 2, 200: 1}, requests=3, failures=1),  # streams
        StatsRow("POST", {100: 1}, requests=1, failures=0),  # plain requests
        StatsRow("TTFT", {10: 2}, requests=2, failures=0),
        StatsRow("ITL", {5: 2}, requests=2, failures=0),
        StatsRow("GET", {1: 9}, requests=9, failures=9),  # not ours
    ]
    obs = collect(rows, METRIC_TYPES)
    assert obs.latencies_ms == {"e2e": {100: 3, 200: 1}, "ttft": {10: 2}, "itl": {5: 2}}
    assert (obs.requests, obs.failures) == (4, 1)


def test_the_shipped_example_file_is_valid():
    example = Path(__file__).resolve().parents[2] / "loadtests" / "slo.example.yaml"
    assert {t.key for t in build_targets(example, None)} == {
        "ttft_p95_ms", "ttft_p99_ms", "itl_p95_ms", "error_rate", "min_requests"
    }  # fmt: skip
