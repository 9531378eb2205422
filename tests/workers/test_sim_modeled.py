"""The batching model driven in real time (``ModeledEngine``): streams, timing against the
virtual-time replay, aborts, and the HTTP worker started with a profile."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.workers.sim_helpers import MODEL, JumpClock, asgi_client, make_app
from workers.sim.core import EngineCore
from workers.sim.engine import GenerationRequest, RequestRecord
from workers.sim.engine_config import EngineConfig
from workers.sim.modeled import ModeledEngine
from workers.sim.profiles import builtin_registry
from workers.sim.replay import ReplayRequest, simulate

PROFILE = builtin_registry().get("llama3-8b-a100")


class Recorder:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.steps: list[int] = []

    def request_finished(self, record: RequestRecord) -> None:
        self.records.append(record)

    def step_finished(self, num_tokens: int) -> None:
        self.steps.append(num_tokens)


def make_engine(
    clock: JumpClock, natural_tokens: int = 6, **config: int
) -> tuple[ModeledEngine, Recorder]:
    engine_config = EngineConfig(**{"max_model_len": 4096, **config})
    core = EngineCore(
        engine_config,
        num_blocks=PROFILE.num_blocks(engine_config),
        max_model_len=4096,
        step_time=PROFILE.step_time,
    )
    recorder = Recorder()
    engine = ModeledEngine(core, clock=clock, natural_tokens=natural_tokens, observer=recorder)
    return engine, recorder


async def test_stream_yields_every_token_and_ends_with_the_finish_reason() -> None:
    engine, recorder = make_engine(JumpClock(0.0))
    stream = engine.submit(GenerationRequest("a", prompt_tokens=50, max_tokens=4))
    assert engine.snapshot().num_waiting == 1  # queued at once, scheduled by the task
    chunks = [(c.start, c.num_tokens, c.finish_reason) async for c in stream]
    assert sum(n for _, n, _ in chunks) == 4
    assert chunks[-1][2] == "length" and all(r is None for _, _, r in chunks[:-1])
    (record,) = recorder.records
    assert (record.num_generated, record.finish_reason) == (4, "length")
    assert recorder.steps == [50, 1, 1, 1]


async def test_real_time_driver_matches_the_virtual_time_replay() -> None:
    clock = JumpClock(0.0)
    engine, recorder = make_engine(clock, natural_tokens=30)
    prompts = [(120, 30), (800, 12), (40, 25)]
    streams = [
        engine.submit(GenerationRequest(f"r{i}", prompt_tokens=p, max_tokens=o))
        for i, (p, o) in enumerate(prompts)
    ]
    await asyncio.gather(*(s.collect() for s in streams))
    replay = simulate(
        [ReplayRequest(f"r{i}", 0.0, p, o) for i, (p, o) in enumerate(prompts)],
        PROFILE,
        EngineConfig(max_model_len=4096),
    )
    live = {r.request_id: r for r in recorder.records}
    for expected in replay.records:
        got = live[expected.request_id]
        assert got.first_token_at == pytest.approx(expected.first_token_at)
        assert got.finished_at == pytest.approx(expected.finished_at)
        assert got.num_generated == expected.num_generated


async def test_collect_waits_for_the_whole_output() -> None:
    engine, _ = make_engine(JumpClock(0.0))
    whole = await engine.submit(GenerationRequest("a", prompt_tokens=10)).collect()
    assert (whole.start, whole.num_tokens, whole.finish_reason) == (0, 6, "stop")


async def test_abort_mid_stream_frees_the_request_and_stops_the_stream() -> None:
    engine, recorder = make_engine(JumpClock(0.0), natural_tokens=1000)
    engine.submit(GenerationRequest("other", prompt_tokens=10, max_tokens=3))
    stream = engine.submit(GenerationRequest("a", prompt_tokens=10))
    first = await anext(aiter(stream))
    assert first.start == 0
    stream.abort()
    assert [c async for c in stream] == []
    snap = engine.snapshot()
    assert snap.num_running + snap.num_waiting <= 1
    aborted = next(r for r in recorder.records if r.request_id == "a")
    assert aborted.finish_reason == "abort" and aborted.num_generated >= 1
    stream.abort()  # idempotent
    assert [r.request_id for r in recorder.records].count("a") == 1


async def test_invalid_requests_are_refused() -> None:
    engine, _ = make_engine(JumpClock(0.0))
    with pytest.raises(ValueError):
        engine.submit(GenerationRequest("a", prompt_tokens=10, max_tokens=0))
    with pytest.raises(ValueError):
        engine.submit(GenerationRequest("b", prompt_tokens=5000))


async def test_steps_follow_the_clock_in_real_time() -> None:
    app = make_app(profile="llama3-8b-a100", output_tokens=8)
    async with asgi_client(app) as client:
        started = time.monotonic()
        response = await client.post("/v1/completions", json={"prompt": "Once upon a time"})
        elapsed = time.monotonic() - started
    assert response.json()["usage"]["completion_tokens"] == 8
    # Eight steps of at least the A100's weight-streaming time each.
    assert elapsed >= 8 * 16.06e9 / (2.039e12 * 0.7)


LONG_CHAT = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Tell me about the tide and the moon. " * 10}],
    "max_tokens": 2,
}


async def test_worker_with_a_profile_reports_prefix_hits_and_cache_config() -> None:
    app = make_app(profile="llama3-8b-h100", max_model_len=8192)
    async with asgi_client(app) as client:
        first = await client.post("/v1/chat/completions", json=LONG_CHAT)
        second = await client.post("/v1/chat/completions", json={**LONG_CHAT, "stream": True})
        assert first.status_code == second.status_code == 200
        text = (await client.get("/metrics")).text
    prompt = first.json()["usage"]["prompt_tokens"]
    labels = f'engine="0",model_name="{MODEL}"'
    hits = (prompt - 1) // 16 * 16
    assert f"vllm:prefix_cache_queries_total{{{labels}}} {2.0 * prompt}" in text
    assert f"vllm:prefix_cache_hits_total{{{labels}}} {float(hits)}" in text
    assert f"vllm:generation_tokens_total{{{labels}}} 4.0" in text
    assert 'vllm:cache_config_info{block_size="16"' in text
    assert f"vllm:iteration_tokens_total_count{{{labels}}} 4.0" in text
    assert f"vllm:request_prompt_tokens_count{{{labels}}} 2.0" in text
    assert f"vllm:kv_cache_usage_perc{{{labels}}} 0.0" in text


async def test_prefix_caching_can_be_turned_off() -> None:
    app = make_app(profile="llama3-8b-h100", enable_prefix_caching=False)
    async with asgi_client(app) as client:
        for _ in range(2):
            await client.post("/v1/chat/completions", json=LONG_CHAT)
        text = (await client.get("/metrics")).text
    labels = f'engine="0",model_name="{MODEL}"'
    assert f"vllm:prefix_cache_hits_total{{{labels}}} 0.0" in text
    assert f"vllm:prefix_cache_queries_total{{{labels}}} 0.0" in text
