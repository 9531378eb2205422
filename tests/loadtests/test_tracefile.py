"""Traces in the shared schema, and sampled lengths that follow the trace."""

from __future__ import annotations

import bisect
import io
import random

import pytest

from loadtests.tracefile import (
    DEFAULT_TRACE,
    LengthLimits,
    LengthSampler,
    TraceError,
    TraceRow,
    load_trace,
    parse_trace,
    quantile,
)


def test_rows_are_read_and_arrivals_rebased_to_zero():
    trace = parse_trace(io.StringIO("arrival_s,input_tokens,output_tokens\n5,10,2\n7.5,20,4\n"))
    assert trace.rows == (TraceRow(0.0, 10, 2), TraceRow(2.5, 20, 4))
    assert trace.duration_s == 2.5


def test_hash_ids_are_parsed_when_the_column_is_there():
    text = "arrival_s,input_tokens,output_tokens,hash_ids\n0,1000,5,1;2\n1,600,5,1;3\n"
    trace = parse_trace(io.StringIO(text))
    assert [r.hash_ids for r in trace.rows] == [(1, 2), (1, 3)]


def test_limit_keeps_the_first_rows():
    text = "arrival_s,input_tokens,output_tokens\n" + "".join(f"{i},5,5\n" for i in range(10))
    assert len(parse_trace(io.StringIO(text), limit=3).rows) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("arrival_s,input_tokens\n0,1\n", "missing column(s) output_tokens"),
        ("arrival_s,input_tokens,output_tokens\n", "no rows"),
        ("arrival_s,input_tokens,output_tokens\n0,ten,1\n", "t.csv:2"),
        ("arrival_s,input_tokens,output_tokens\n0,0,1\n", "token counts >= 1"),
        ("arrival_s,input_tokens,output_tokens\n0,5,-1\n", "token counts >= 1"),
        ("arrival_s,input_tokens,output_tokens\nnan,5,1\n", "finite arrival"),
        ("arrival_s,input_tokens,output_tokens\n2,5,1\n1,5,1\n", "t.csv:3: arrival_s goes back"),
    ],
)
def test_a_bad_trace_names_file_and_line(text, message):
    with pytest.raises(TraceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_trace(io.StringIO(text), source="t.csv")


def test_a_missing_file_is_a_trace_error(tmp_path):
    with pytest.raises(TraceError, match="cannot read trace"):
        load_trace(tmp_path / "nope.csv")


def test_the_shipped_sample_loads():
    trace = load_trace(DEFAULT_TRACE)
    assert len(trace.rows) == 300
    assert trace.rows[0].arrival_s == 0.0


@pytest.mark.parametrize("column", ["input_tokens", "output_tokens"])
@pytest.mark.parametrize("q", [0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
def test_sampled_lengths_follow_the_traces_distribution(column, q):
    trace = load_trace(DEFAULT_TRACE)
    sampler = LengthSampler(trace, random.Random(7), LengthLimits())
    samples = [getattr(sampler.sample(), column) for _ in range(20_000)]
    population = sorted(getattr(r, column) for r in trace.rows)
    # Where the sample's quantile falls in the trace's own distribution: within 2 points of q.
    value = quantile(samples, q)
    below = bisect.bisect_left(population, value) / len(population)
    at_or_below = bisect.bisect_right(population, value) / len(population)
    assert below - 0.02 <= q <= at_or_below + 0.02


def test_sampling_keeps_input_and_output_of_a_row_together():
    trace = load_trace(DEFAULT_TRACE)
    pairs = {(r.input_tokens, r.output_tokens) for r in trace.rows}
    sampler = LengthSampler(trace, random.Random(1), LengthLimits())
    drawn = [sampler.sample() for _ in range(500)]
    assert all((r.input_tokens, r.output_tokens) in pairs for r in drawn)


def test_limits_cap_lengths_and_leave_short_rows_alone():
    limits = LengthLimits(max_input_tokens=100, max_output_tokens=10)
    row = TraceRow(1.0, 500, 50, (1,))
    assert limits.apply(row) == TraceRow(1.0, 100, 10, (1,))
    short = TraceRow(0.0, 50, 5)
    assert limits.apply(short) is short


def test_same_seed_same_samples():
    trace = load_trace(DEFAULT_TRACE)

    def draw(seed):
        sampler = LengthSampler(trace, random.Random(seed), LengthLimits())
        return [sampler.sample() for _ in range(5)]

    assert draw(3) == draw(3)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([3, 1, 2], 0.5, 2), ([1, 2, 3, 4], 0.0, 1), ([1, 2, 3, 4], 1.0, 4), ([5], 0.99, 5)],
)
def test_quantile_is_nearest_rank(values, q, expected):
    assert quantile(values, q) == expected
