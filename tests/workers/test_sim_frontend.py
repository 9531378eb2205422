"""Client-view closed loops: the engine model plus the API server's latency."""

from __future__ import annotations

import pytest

from workers.sim.calibration import measured_profile
from workers.sim.engine_config import EngineConfig
from workers.sim.frontend import ClientTiming, FrontendLatency, closed_loop_timings
from workers.sim.profiles import Profile, ProfileRegistry
from workers.sim.replay import ReplayRequest, VirtualEngine, run_closed_loop
from workers.sim.step_time import BatchShape, LinearCosts, LinearStepTime

COSTS = LinearCosts(
    step_overhead_s=0.002,
    prefill_token_s=10e-6,
    decode_token_s=100e-6,
    context_token_s=0.1e-6,
    attention_pair_s=10e-9,
)
CONFIG = EngineConfig(max_num_seqs=4, max_num_batched_tokens=512, block_size=128, num_gpu_blocks=64)
SHAPES = [(100 + 37 * i % 400, 5 + 11 * i % 40) for i in range(30)]


def profile() -> Profile:
    spec = measured_profile(
        COSTS, kv_bytes_per_token=1024, kv_cache_bytes=2**30, max_model_len=2048
    )
    return ProfileRegistry([spec]).get("cpu-tiny")


def timings(concurrency: int, frontend: FrontendLatency | None = None) -> list[ClientTiming]:
    p = profile()
    return closed_loop_timings(
        SHAPES,
        concurrency,
        config=CONFIG,
        num_blocks=p.num_blocks(CONFIG),
        max_model_len=p.max_len(CONFIG),
        step_time=p.step_time,
        frontend=frontend,
    )


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_without_latency_it_is_the_replay_closed_loop(concurrency: int) -> None:
    """Same requests, same engine: first and last token times equal ``run_closed_loop``'s."""
    ours = timings(concurrency)
    engine = VirtualEngine(profile(), CONFIG, fast_forward=False)
    requests = [ReplayRequest(f"r{i}", 0.0, p, o) for i, (p, o) in enumerate(SHAPES)]
    records = {r.request_id: r for r in run_closed_loop(engine, requests, concurrency).records}
    for i, timing in enumerate(ours):
        record = records[f"r{i}"]
        assert len(timing.token_times) == SHAPES[i][1] == record.num_generated
        assert timing.sent == pytest.approx(record.arrived_at)
        assert timing.token_times[0] == pytest.approx(record.first_token_at)
        assert timing.token_times[-1] == pytest.approx(record.finished_at)


def test_every_gap_is_a_step() -> None:
    for timing in timings(2):
        assert all(gap >= COSTS.step_overhead_s for gap in timing.gaps())


def test_latency_delays_a_lone_request_by_its_base() -> None:
    """Alone, nothing runs when it is sent: only the base applies, then one prefill step."""
    step_time = profile().step_time
    alone = closed_loop_timings(
        [(64, 3)],
        1,
        config=CONFIG,
        num_blocks=64,
        max_model_len=2048,
        step_time=step_time,
        frontend=FrontendLatency(base_s=0.005, per_running_s=1.0),
    )[0]
    prefill = step_time.step_seconds(BatchShape(1, 64, 64, 1, 64, 64 * 65 // 2))
    assert alone.sent == 0.0
    assert alone.ttft == pytest.approx(0.005 + prefill)


def test_requests_sent_together_pass_the_api_server_one_after_another() -> None:
    together = closed_loop_timings(
        [(16, 2)] * 3,
        3,
        config=CONFIG,
        num_blocks=64,
        max_model_len=2048,
        step_time=LinearStepTime(COSTS.model_copy(update={"prefill_token_s": 0.0})),
        frontend=FrontendLatency(base_s=0.010),
    )
    assert [t.sent for t in together] == [0.0, 0.0, 0.0]
    firsts = [t.token_times[0] for t in together]
    assert firsts[1] - firsts[0] == pytest.approx(0.010, abs=0.003)  # not the same step
    assert firsts[2] - firsts[1] == pytest.approx(0.010, abs=0.003)


def test_latency_grows_with_the_requests_running() -> None:
    quiet = timings(4, FrontendLatency(base_s=0.003))
    busy = timings(4, FrontendLatency(base_s=0.003, per_running_s=0.002))
    later = [b.ttft - q.ttft for q, b in zip(quiet, busy, strict=True)][4:]
    assert sum(later) / len(later) > 0.004  # about three running when each later one is sent


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        timings(0)
