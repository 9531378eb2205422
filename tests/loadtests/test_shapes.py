"""Load shapes as functions of elapsed time and load, table-driven."""

from __future__ import annotations

import pytest

from loadtests.shapes import (
    ConstantShape,
    LoadSnapshot,
    ReplaySchedule,
    ReplayShape,
    SpikeShape,
    StepShape,
)
from loadtests.tracefile import TraceRow

IDLE = LoadSnapshot()
STEP = StepShape(start_users=2, step_users=3, step_s=10.0, steps=3, spawn_rate=5.0)
SPIKE = SpikeShape(base_users=2, spike_users=20, spike_at_s=10, spike_s=5, duration_s=30,
                   spawn_rate=50)  # fmt: skip


@pytest.mark.parametrize(
    ("t", "expected"),
    [(0.0, (2, 5.0)), (9.9, (2, 5.0)), (10.0, (5, 5.0)), (25.0, (8, 5.0)), (30.0, None)],
)
def test_step(t, expected):
    assert STEP.tick(t, IDLE) == expected


@pytest.mark.parametrize(
    ("t", "expected"),
    [(0.0, (2, 50)), (9.99, (2, 50)), (10.0, (20, 50)), (14.9, (20, 50)), (15.0, (2, 50)),
     (29.9, (2, 50)), (30.0, None)],
)  # fmt: skip
def test_spike(t, expected):
    assert SPIKE.tick(t, IDLE) == expected


@pytest.mark.parametrize(
    ("duration", "t", "expected"),
    [(None, 1e6, (4, 2.0)), (60.0, 59.0, (4, 2.0)), (60.0, 60.0, None)],
)
def test_constant(duration, t, expected):
    assert ConstantShape(4, 2.0, duration).tick(t, IDLE) == expected


@pytest.mark.parametrize("shape", [STEP, SPIKE, ConstantShape(4, 2.0)])
def test_closed_loop_shapes_end_once_the_budget_is_spent_and_answered(shape):
    assert shape.tick(1.0, LoadSnapshot(in_flight=2, exhausted=True)) is not None
    assert shape.tick(1.0, LoadSnapshot(waiting=1, exhausted=True)) is not None
    assert shape.tick(1.0, LoadSnapshot(in_flight=0, exhausted=True)) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step_s": 0}, "step time"),
        ({"steps": 0}, "steps"),
        ({"start_users": 0, "step_users": 0}, "never runs"),
    ],
)
def test_bad_step_shapes(kwargs, message):
    args = {"start_users": 1, "step_users": 1, "step_s": 1.0, "steps": 1, "spawn_rate": 1.0}
    with pytest.raises(ValueError, match=message):
        StepShape(**{**args, **kwargs})


@pytest.mark.parametrize(
    "kwargs", [{"spike_users": 0}, {"spike_s": 0}, {"spike_at_s": 30}, {"base_users": -1}]
)
def test_bad_spike_shapes(kwargs):
    args = {"base_users": 1, "spike_users": 5, "spike_at_s": 1, "spike_s": 1, "duration_s": 30,
            "spawn_rate": 1}  # fmt: skip
    with pytest.raises(ValueError):
        SpikeShape(**{**args, **kwargs})


REPLAY = ReplayShape(last_arrival_s=100.0, min_users=8, max_users=50, headroom=4, drain_s=10)


@pytest.mark.parametrize(
    ("t", "load", "users"),
    [
        (0.0, LoadSnapshot(), 8),  # the floor
        (5.0, LoadSnapshot(in_flight=20, users=8), 29),  # ceil(20 * 1.25) + 4
        (6.0, LoadSnapshot(in_flight=2, users=29), 29),  # never shrinks (users mid-request)
        (6.5, LoadSnapshot(in_flight=2, waiting=40, users=8), 8),  # held arrivals: no growth
        (7.0, LoadSnapshot(in_flight=100, users=29), 50),  # the cap
        (105.0, LoadSnapshot(in_flight=3, exhausted=True, users=10), 10),  # draining
        (60.0, LoadSnapshot(waiting=1, exhausted=True, users=10), 10),  # the last one waits
    ],
)
def test_replay_pool_grows_with_requests_in_flight(t, load, users):
    assert REPLAY.tick(t, load) == (users, REPLAY.spawn_rate)


@pytest.mark.parametrize(
    ("t", "load"),
    [
        (50.0, LoadSnapshot(in_flight=0, waiting=0, exhausted=True)),  # all sent and answered
        (110.0, LoadSnapshot(in_flight=5, exhausted=True)),  # stragglers past the drain time
    ],
)
def test_replay_ends(t, load):
    assert REPLAY.tick(t, load) is None


ROWS = [TraceRow(float(t), 10, 5) for t in (0, 2, 4, 10)]


def test_schedule_hands_out_arrivals_in_order_compressed_by_the_speedup():
    schedule = ReplaySchedule(ROWS, speedup=2.0)
    taken = [schedule.take() for _ in range(5)]
    assert [a.due_s for a in taken if a] == [0.0, 1.0, 2.0, 5.0]
    assert [a.index for a in taken if a] == [0, 1, 2, 3]
    assert taken[-1] is None and schedule.exhausted
    assert schedule.last_arrival_s == 5.0


def test_schedule_max_requests_keeps_the_first_arrivals():
    schedule = ReplaySchedule(ROWS, speedup=1.0, max_requests=2)
    assert len(schedule) == 2 and schedule.last_arrival_s == 2.0


@pytest.mark.parametrize("speedup", [0.0, -1.0, float("inf"), float("nan")])
def test_schedule_needs_a_positive_speedup(speedup):
    with pytest.raises(ValueError, match="speed-up"):
        ReplaySchedule(ROWS, speedup=speedup)


def test_schedule_counts_late_arrivals():
    schedule = ReplaySchedule(ROWS, speedup=1.0)
    for lag in (-0.5, 0.05, 0.3, 2.0):
        schedule.record_lag(lag)
    assert schedule.late == 2 and schedule.max_lag_s == 2.0


@pytest.mark.parametrize(
    ("arrivals", "speedup", "peak"),
    [
        ((0, 2, 4, 10), 1.0, 1),
        ((0, 2, 4, 10), 2.0, 1),  # 0, 1, 2, 5: windows are half-open, [t, t + 1)
        ((0, 2, 3, 10), 2.0, 2),  # 0, 1, 1.5, 5
        ((0, 0.1, 0.2, 0.3, 5), 1.0, 4),
        ((0, 0.5, 1.0, 1.4), 1.0, 3),
    ],
)
def test_peak_arrivals_in_a_second(arrivals, speedup, peak):
    schedule = ReplaySchedule([TraceRow(float(t), 1, 1) for t in arrivals], speedup=speedup)
    assert schedule.peak_arrivals(1.0) == peak
