"""The per-process composition: shape choice, request budget, run time, seeding."""

from __future__ import annotations

import argparse

import pytest

from loadtests.options import add_arguments, load_config
from loadtests.shapes import ConstantShape, ReplayShape, SpikeShape, StepShape
from loadtests.tracefile import Trace, TraceRow
from loadtests.workload import CommonOptions, Workload, build_spec

TRACE = Trace(tuple(TraceRow(float(i), 100 + i, 10) for i in range(10)), "t.csv")


def workload(*args: str, common: CommonOptions | None = None, served=("m",)) -> Workload:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = load_config(parser.parse_args(list(args)))
    return Workload(config, TRACE, build_spec(config, served), common or CommonOptions())


@pytest.mark.parametrize(
    ("shape", "kind"),
    [("constant", ConstantShape), ("step", StepShape), ("spike", SpikeShape),
     ("replay", ReplayShape)],
)  # fmt: skip
def test_the_shape_is_chosen_by_name(shape, kind):
    assert isinstance(workload("--shape", shape).shape, kind)


def test_the_constant_shape_uses_locusts_users_and_spawn_rate():
    w = workload(common=CommonOptions(users=7, spawn_rate=3.0))
    assert w.tick(0.0, 0) == (7, 3.0)


def test_a_spike_starts_its_users_within_a_second():
    w = workload("--shape", "spike", "--spike-users", "40", common=CommonOptions(spawn_rate=1.0))
    assert w.tick(35.0, 2) == (40, 40.0)


def test_run_time_ends_any_shape():
    w = workload("--shape", "step", common=CommonOptions(run_time_s=5.0))
    assert w.tick(4.9, 1) is not None and w.tick(5.0, 1) is None


def test_the_request_budget_stops_sending_then_ends_the_run():
    w = workload("--max-requests", "2")
    _, sampler = w.user_traffic()
    jobs = [w.next_request(sampler) for _ in range(2)]
    assert all(job is not None and job.due_s is None for job in jobs)
    assert w.next_request(sampler) is None and w.exhausted and w.sent == 2
    w.sending()
    assert w.tick(1.0, 1) is not None  # one in flight, one held
    w.finished(sent=True)
    assert w.tick(1.0, 1) is not None
    w.finished(sent=False)
    assert w.tick(1.0, 1) is None


def test_replay_hands_out_the_traces_rows_with_length_caps():
    w = workload("--shape", "replay", "--speedup", "2", "--max-output-tokens", "4")
    _, sampler = w.user_traffic()
    first, second = w.next_request(sampler), w.next_request(sampler)
    assert first is not None and second is not None
    assert (first.due_s, second.due_s) == (0.0, 0.5)
    assert second.row == TraceRow(1.0, 101, 4)
    assert w.replay


def test_a_replay_arrival_waiting_for_its_time_keeps_the_run_going():
    w = workload("--shape", "replay")
    _, sampler = w.user_traffic()
    for _ in range(len(TRACE.rows)):
        assert w.next_request(sampler) is not None
    assert w.exhausted and (w.held, w.in_flight) == (10, 0)
    assert w.tick(1.0, 8) == (8, 100.0)  # held arrivals do not grow the pool
    for _ in range(10):
        w.sending()
    assert w.tick(1.0, 8) == (15, 100.0)  # ceil(10 * 1.25) + 1 arrival a second + 1
    for _ in range(10):
        w.finished()
    assert w.tick(1.0, 8) is None


def test_replay_stops_at_the_budget():
    w = workload("--shape", "replay", "--max-requests", "1")
    _, sampler = w.user_traffic()
    assert w.next_request(sampler) is not None
    assert w.next_request(sampler) is None and w.exhausted


def test_a_broken_workload_ends_the_run_at_the_next_tick():
    w = workload()
    w.broken = "no model"
    assert w.tick(0.0, 0) is None


def test_users_get_their_own_reproducible_streams():
    a, b = workload("--seed", "3"), workload("--seed", "3")
    first_a, first_b = a.user_traffic()[1], b.user_traffic()[1]
    second_a = a.user_traffic()[1]
    draws = lambda s: [s.sample() for _ in range(20)]  # noqa: E731
    assert draws(first_a) == draws(first_b)
    assert draws(a.user_traffic()[1]) != draws(second_a)


def test_the_model_defaults_to_the_first_one_served():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = load_config(parser.parse_args([]))
    assert build_spec(config, ("x", "y")).models.names == ("x",)
    with pytest.raises(ValueError, match="--models"):
        build_spec(config, ())
    named = load_config(parser.parse_args(["--models", "a:2,b"]))
    assert build_spec(named, ("x",)).models.names == ("a", "b")


def test_a_process_without_traffic_cannot_make_users():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    w = Workload(load_config(parser.parse_args([])), TRACE, None, CommonOptions())
    with pytest.raises(RuntimeError):
        w.user_traffic()


def test_replay_starts_with_enough_users_for_its_busiest_second():
    burst = Trace(tuple(TraceRow(i * 0.01, 10, 5) for i in range(30)), "burst.csv")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = load_config(parser.parse_args(["--shape", "replay"]))
    w = Workload(config, burst, build_spec(config, ("m",)), CommonOptions())
    assert w.tick(0.0, 0) == (31, 100.0)
