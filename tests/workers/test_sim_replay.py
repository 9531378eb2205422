"""Virtual-time replay: one engine, fleets with a router, closed loops and traces."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from workers.sim.engine import EngineSnapshot
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import MeasuredProfileSpec, Profile, ProfileRegistry, builtin_registry
from workers.sim.replay import (
    ReplayRequest,
    VirtualEngine,
    first_engine,
    least_loaded,
    run_closed_loop,
    run_fleet,
    simulate,
)
from workers.sim.step_time import LinearCosts
from workers.sim.trace import read_trace

# 10 ms a step, 1 ms per prompt token, 1 ms per decoding sequence: easy arithmetic.
LINEAR = ProfileRegistry(
    [
        MeasuredProfileSpec(
            name="linear",
            costs=LinearCosts(step_overhead_s=0.01, prefill_token_s=0.001, decode_token_s=0.001),
            kv_bytes_per_token=1024,
            kv_cache_bytes=1024 * 16 * 4096,
            max_model_len=4096,
        )
    ]
).get("linear")


def one(rid: str, at: float, prompt: int = 100, output: int = 10) -> ReplayRequest:
    return ReplayRequest(rid, at, prompt, output)


def test_one_request_takes_one_prefill_step_then_one_step_per_token() -> None:
    report = simulate([one("a", 5.0)], LINEAR)
    (r,) = report.records
    assert r.first_token_at == pytest.approx(5.0 + 0.01 + 0.1)
    assert r.finished_at == pytest.approx(5.11 + 9 * 0.011)
    assert (r.num_generated, r.finish_reason, r.scheduled_at) == (10, "stop", 5.0)
    assert report.num_steps == 10
    assert report.engine_of == {"a": 0}


def test_requests_arriving_together_share_their_first_step() -> None:
    report = simulate([one("a", 1.0), one("b", 1.0)], LINEAR)
    a, b = sorted(report.records, key=lambda r: r.request_id)
    assert a.first_token_at == b.first_token_at == pytest.approx(1.0 + 0.01 + 0.2)


def test_a_request_arriving_mid_step_waits_for_the_step_to_end() -> None:
    report = simulate([one("a", 0.0, output=50), one("b", 0.15, output=1)], LINEAR)
    b = next(r for r in report.records if r.request_id == "b")
    # a's steps end at 0.11, 0.121, ..., so b is scheduled at the step end after 0.15.
    assert b.scheduled_at is not None and 0.15 <= b.scheduled_at < 0.15 + 0.011


def random_workload(count: int, seed: int) -> list[ReplayRequest]:
    rng = random.Random(seed)
    t, requests = 0.0, []
    for i in range(count):
        t += rng.expovariate(20.0)
        prefix = rng.randrange(4)
        ids = (prefix, prefix * 100 + rng.randrange(3), 10_000 + i)
        prompt = rng.randrange(600, 1500)
        requests.append(
            ReplayRequest(f"r{i}", t, prompt, rng.randrange(1, 300), trace_block_ids=ids)
        )
    return requests


@pytest.mark.parametrize("num_gpu_blocks", [None, 400])
def test_fast_forward_changes_nothing_but_speed(num_gpu_blocks: int | None) -> None:
    profile = builtin_registry().get("llama3-8b-a100")
    config = EngineConfig(num_gpu_blocks=num_gpu_blocks, max_model_len=4096)
    requests = random_workload(300, seed=7)
    fast = simulate(requests, profile, config, fast_forward=True)
    slow = simulate(requests, profile, config, fast_forward=False)
    assert fast.records == slow.records
    assert fast.snapshots == slow.snapshots
    assert fast.num_steps == slow.num_steps
    snap = fast.snapshots[0]
    assert snap.prefix_cache_hits_total > 0
    if num_gpu_blocks is not None:
        assert snap.num_preemptions_total > 0


def test_every_request_finishes_with_its_tokens() -> None:
    requests = random_workload(200, seed=3)
    report = simulate(requests, builtin_registry().get("llama3-8b-h100"))
    assert len(report.records) == 200 and not report.rejected
    wanted = {r.request_id: r.output_tokens for r in requests}
    for record in report.records:
        assert record.num_generated == wanted[record.request_id]
        assert record.first_token_at is not None and record.scheduled_at is not None
        assert record.arrived_at <= record.scheduled_at < record.first_token_at
        assert record.first_token_at <= record.finished_at
    snap = report.snapshots[0]
    assert (snap.num_running, snap.num_waiting, snap.kv_cache_usage) == (0, 0, 0.0)
    assert snap.generation_tokens_total == sum(wanted.values())


def test_prompts_too_long_for_the_context_are_rejected() -> None:
    config = EngineConfig(max_model_len=1000)
    report = simulate([one("ok", 0.0, 999, 5), one("long", 0.0, 1000)], LINEAR, config)
    assert [r.request_id for r in report.rejected] == ["long"]
    (ok,) = report.records
    assert (ok.num_generated, ok.finish_reason) == (1, "length")


def fleet(count: int, profile: Profile = LINEAR) -> list[VirtualEngine]:
    return [VirtualEngine(profile, EngineConfig()) for _ in range(count)]


def test_least_loaded_spreads_a_burst_over_the_fleet() -> None:
    requests = [one(f"r{i}", 0.0) for i in range(12)]
    report = run_fleet(fleet(3), requests, least_loaded)
    assert sorted(report.engine_of.values()) == [0] * 4 + [1] * 4 + [2] * 4
    assert len(report.records) == 12
    assert [s.generation_tokens_total for s in report.snapshots] == [40, 40, 40]


def test_the_router_sees_every_engines_current_snapshot() -> None:
    seen: list[tuple[float, tuple[int, ...]]] = []

    def spy(request: ReplayRequest, engines: Sequence[EngineSnapshot]) -> int:
        seen.append((request.arrival_s, tuple(e.num_running + e.num_waiting for e in engines)))
        return 1

    run_fleet(fleet(2), [one("a", 0.0), one("b", 0.05), one("c", 10.0)], spy)
    assert seen == [(0.0, (0, 0)), (0.05, (0, 1)), (10.0, (0, 0))]


def test_first_engine_router() -> None:
    report = run_fleet(fleet(2), [one("a", 0.0), one("b", 0.0)], first_engine)
    assert set(report.engine_of.values()) == {0}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_closed_loop_keeps_the_concurrency(concurrency: int) -> None:
    requests = [one(f"r{i}", 99.0, output=5 + i) for i in range(10)]
    report = run_closed_loop(VirtualEngine(LINEAR, EngineConfig()), requests, concurrency)
    assert len(report.records) == 10
    starts = sorted(r.arrived_at for r in report.records)
    assert starts[:concurrency] == [0.0] * concurrency
    for record in report.records:
        in_flight = sum(
            1 for r in report.records if r.arrived_at <= record.arrived_at < r.finished_at
        )
        assert in_flight <= concurrency


def test_trace_rows_become_arrivals_with_prefix_ids(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(
        "arrival_s,input_tokens,output_tokens,hash_ids\n"
        "0.000,1000,5,1;2\n"
        "2.000,1100,3,1;2;3\n"
        "4.000,600,2,9;10\n"
    )
    requests = read_trace(path, speedup=2.0)
    assert [r.arrival_s for r in requests] == [0.0, 1.0, 2.0]
    assert requests[1].trace_block_ids == (1, 2, 3)
    assert len(read_trace(path, limit=2)) == 2
    report = simulate(requests, builtin_registry().get("llama3-8b-h100"))
    cached = {r.request_id: r.cached_prompt_tokens for r in report.records}
    assert cached == {"trace-0": 0, "trace-1": 992, "trace-2": 0}


def test_traces_without_hash_ids_still_load(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n0.5,10,2\n")
    (request,) = read_trace(path)
    assert (request.arrival_s, request.trace_block_ids) == (0.5, None)
    with pytest.raises(ValueError):
        read_trace(path, speedup=0)
