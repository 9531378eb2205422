"""A day-long trace from a rate curve: its mean, its shape, its lengths."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from workers.sim.trace import read_trace
from workers.tune.daytrace import Window, day_arrivals, main, read_day

HEADER = "window_start_s,window_s,total_rate_rps,active_clients,gap\n"


def curve(tmp_path: Path) -> Path:
    path = tmp_path / "curve.csv"
    rows = [
        "0,600,10,1,0",
        "600,600,30,1,0",
        "1200,600,0,0,1",  # a collection gap: takes 30 from the window before
        "86400,600,99,1,0",  # day 1
    ]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def test_read_day_fills_gaps_and_keeps_one_day(tmp_path: Path) -> None:
    assert read_day(curve(tmp_path)) == [
        Window(0, 600, 10),
        Window(600, 600, 30),
        Window(1200, 600, 30),
    ]
    assert read_day(curve(tmp_path), day=1) == [Window(0, 600, 99)]
    with pytest.raises(ValueError, match="no windows on day 2"):
        read_day(curve(tmp_path), day=2)


def test_arrivals_follow_the_curve_scaled_to_the_mean() -> None:
    windows = [Window(0, 3600, 1.0), Window(3600, 3600, 3.0)]  # curve mean 2
    rows = day_arrivals(windows, [(100, 10), (200, 20)], 4.0, random.Random(7))
    first = sum(1 for t, _, _ in rows if t < 3600)
    assert len(rows) == pytest.approx(4.0 * 7200, rel=0.03)
    assert len(rows) - first == pytest.approx(3 * first, rel=0.06)  # three times the rate
    assert rows[0][0] == 0.0 and all(a[0] <= b[0] for a, b in itertools.pairwise(rows))
    assert {(i, o) for _, i, o in rows} == {(100, 10), (200, 20)}


def test_command_writes_a_trace_the_tuner_reads(tmp_path: Path) -> None:
    lengths = tmp_path / "lengths.csv"
    lengths.write_text("arrival_s,input_tokens,output_tokens\n0,500,50\n1,700,70\n")
    out = tmp_path / "day.csv"
    args = ["--curve", str(curve(tmp_path)), "--lengths", str(lengths), "--out", str(out)]
    assert main([*args, "--mean-rps", "0.5"]) == 0
    requests = read_trace(out)
    assert len(requests) == pytest.approx(0.5 * 1800, rel=0.15)
    assert {r.prompt_tokens for r in requests} == {500, 700}
