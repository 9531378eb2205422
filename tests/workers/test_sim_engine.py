"""FixedDelayEngine: admission, FIFO order, aborts, output length and timing records."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.workers.sim_helpers import JumpClock
from workers.sim.engine import GenerationRequest, OutputPlan, RequestRecord, plan_output
from workers.sim.fixed_delay import FixedDelayConfig, FixedDelayEngine, FixedDelayStream


class Recorder:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def request_finished(self, record: RequestRecord) -> None:
        self.records.append(record)

    def by_id(self) -> dict[str, RequestRecord]:
        return {r.request_id: r for r in self.records}


def make_engine(clock: JumpClock | None = None, **config: Any) -> tuple[FixedDelayEngine, Recorder]:
    recorder = Recorder()
    engine = FixedDelayEngine(
        FixedDelayConfig(**config),
        clock=clock or JumpClock(),
        observer=recorder,
    )
    return engine, recorder


def request(
    rid: str, prompt: int = 10, max_tokens: int | None = None, ignore_eos: bool = False
) -> GenerationRequest:
    return GenerationRequest(
        rid, prompt_tokens=prompt, max_tokens=max_tokens, ignore_eos=ignore_eos
    )


async def drain(stream: FixedDelayStream) -> list[tuple[int, int, str | None]]:
    return [(c.start, c.num_tokens, c.finish_reason) async for c in stream]


@pytest.mark.parametrize(
    ("natural", "max_tokens", "ignore_eos", "room", "expected"),
    [
        (64, None, False, 8000, OutputPlan(64, "stop")),
        (64, 64, False, 8000, OutputPlan(64, "stop")),
        (64, 65, False, 8000, OutputPlan(64, "stop")),
        (64, 10, False, 8000, OutputPlan(10, "length")),
        (64, 100, True, 8000, OutputPlan(100, "length")),
        (64, 5, True, 8000, OutputPlan(5, "length")),
        (64, None, True, 100, OutputPlan(100, "length")),
        (64, None, False, 30, OutputPlan(30, "length")),
        (64, 100, False, 50, OutputPlan(50, "length")),
    ],
)
def test_plan_output(
    natural: int, max_tokens: int | None, ignore_eos: bool, room: int, expected: OutputPlan
) -> None:
    assert (
        plan_output(natural_tokens=natural, max_tokens=max_tokens, ignore_eos=ignore_eos, room=room)
        == expected
    )


@pytest.mark.parametrize(
    ("max_num_seqs", "submitted", "running", "waiting"),
    [(4, 0, 0, 0), (4, 3, 3, 0), (4, 4, 4, 0), (4, 7, 4, 3), (1, 5, 1, 4)],
)
async def test_admission_limits_running(
    max_num_seqs: int, submitted: int, running: int, waiting: int
) -> None:
    engine, _ = make_engine(max_num_seqs=max_num_seqs)
    streams = [engine.submit(request(f"r{i}")) for i in range(submitted)]
    snap = engine.snapshot()
    assert (snap.num_running, snap.num_waiting) == (running, waiting)
    assert snap.kv_cache_usage == running / max_num_seqs
    assert [s.phase for s in streams] == ["running"] * running + ["waiting"] * waiting


async def test_waiting_requests_are_admitted_in_arrival_order() -> None:
    engine, recorder = make_engine(max_num_seqs=1, natural_tokens=2)
    a, b, c, d = (engine.submit(request(rid)) for rid in "abcd")
    await drain(a)
    assert [s.phase for s in (a, b, c, d)] == ["finished", "running", "waiting", "waiting"]
    c.abort()  # leaving the queue does not disturb the order of the rest
    await drain(b)
    assert [s.phase for s in (b, c, d)] == ["finished", "finished", "running"]
    await drain(d)
    assert [r.request_id for r in recorder.records] == ["a", "c", "b", "d"]
    assert [r.finish_reason for r in recorder.records] == ["stop", "abort", "stop", "stop"]


@pytest.mark.parametrize("victim", ["running", "waiting"])
async def test_abort_frees_its_place_at_once(victim: str) -> None:
    engine, recorder = make_engine(max_num_seqs=2)
    a, b, c = (engine.submit(request(rid)) for rid in "abc")
    target = a if victim == "running" else c
    target.abort()
    snap = engine.snapshot()
    assert (snap.num_running, snap.num_waiting) == (2, 0)
    assert target.phase == "finished"
    assert b.phase == "running"
    assert c.phase == ("running" if victim == "running" else "finished")
    assert [(r.request_id, r.finish_reason, r.num_generated) for r in recorder.records] == [
        (target.request_id, "abort", 0)
    ]
    target.abort()  # idempotent
    assert len(recorder.records) == 1
    assert await drain(target) == []


async def test_abort_mid_stream_stops_iteration_and_counts_tokens() -> None:
    engine, recorder = make_engine(natural_tokens=10)
    stream = engine.submit(request("a"))
    it = aiter(stream)
    assert (await anext(it)).start == 0
    assert (await anext(it)).start == 1
    stream.abort()
    assert engine.snapshot().num_running == 0
    assert await drain(stream) == []
    (record,) = recorder.records
    assert (record.finish_reason, record.num_generated) == ("abort", 2)
    assert engine.snapshot().generation_tokens_total == 2


async def test_abort_after_finish_is_a_no_op() -> None:
    engine, recorder = make_engine(natural_tokens=3)
    stream = engine.submit(request("a"))
    await stream.collect()
    stream.abort()
    assert [r.finish_reason for r in recorder.records] == ["stop"]


@pytest.mark.parametrize(
    ("max_tokens", "ignore_eos", "tokens", "reason"),
    [
        (None, False, 6, "stop"),
        (3, False, 3, "length"),
        (9, True, 9, "length"),
        (6, False, 6, "stop"),
    ],
)
async def test_stream_yields_one_chunk_per_token_and_finishes_on_the_last(
    max_tokens: int | None, ignore_eos: bool, tokens: int, reason: str
) -> None:
    engine, recorder = make_engine(natural_tokens=6)
    chunks = await drain(engine.submit(request("a", max_tokens=max_tokens, ignore_eos=ignore_eos)))
    assert chunks == [(i, 1, None) for i in range(tokens - 1)] + [(tokens - 1, 1, reason)]
    assert recorder.records[0].num_generated == tokens
    collected = await engine.submit(
        request("b", max_tokens=max_tokens, ignore_eos=ignore_eos)
    ).collect()
    assert (collected.start, collected.num_tokens, collected.finish_reason) == (0, tokens, reason)
    snap = engine.snapshot()
    assert (snap.num_running, snap.prompt_tokens_total, snap.generation_tokens_total) == (
        0,
        20,
        2 * tokens,
    )


async def test_zero_delay_long_output_completes() -> None:
    engine, _ = make_engine(natural_tokens=5000, max_model_len=8192)
    chunks = await drain(engine.submit(request("a")))
    assert len(chunks) == 5000


@pytest.mark.parametrize("use_collect", [False, True])
async def test_timing_follows_ttft_and_token_delay(use_collect: bool) -> None:
    clock = JumpClock(start=100.0)
    engine, recorder = make_engine(clock, ttft_s=0.5, token_delay_s=0.1, natural_tokens=4)
    stream = engine.submit(request("a"))
    if use_collect:
        await stream.collect()
    else:
        await drain(stream)
    (r,) = recorder.records
    assert r.scheduled_at == r.arrived_at == 100.0
    assert r.first_token_at == pytest.approx(100.5)
    assert r.last_token_at == pytest.approx(100.8)
    assert r.finished_at == pytest.approx(100.8)


async def test_queue_time_is_time_spent_waiting_for_a_slot() -> None:
    clock = JumpClock(start=0.0)
    engine, recorder = make_engine(
        clock, ttft_s=1.0, token_delay_s=0.5, natural_tokens=3, max_num_seqs=1
    )
    first, second = engine.submit(request("a")), engine.submit(request("b"))
    waiter = asyncio.ensure_future(second.collect())  # parks until "a" frees the slot
    await first.collect()
    assert second.phase == "running"
    result = await waiter
    assert (result.num_tokens, result.finish_reason) == (3, "stop")
    records = recorder.by_id()
    assert records["b"].scheduled_at == pytest.approx(2.0)
    assert records["b"].arrived_at == 0.0
    assert records["b"].first_token_at == pytest.approx(3.0)


async def test_abort_wakes_a_request_waiting_for_a_slot() -> None:
    engine, recorder = make_engine(max_num_seqs=1)
    engine.submit(request("a"))
    queued = engine.submit(request("b"))
    waiter = asyncio.ensure_future(queued.collect())
    await asyncio.sleep(0)  # let it park on the queue
    queued.abort()
    result = await waiter
    assert (result.num_tokens, result.finish_reason) == (0, "abort")
    assert [r.request_id for r in recorder.records] == ["b"]
    assert recorder.records[0].scheduled_at is None


@pytest.mark.parametrize(("prompt", "max_tokens"), [(0, None), (8192, None), (10, 0)])
def test_submit_rejects_requests_the_server_must_have_refused(
    prompt: int, max_tokens: int | None
) -> None:
    engine, _ = make_engine()
    with pytest.raises(ValueError):
        engine.submit(request("a", prompt=prompt, max_tokens=max_tokens))


def test_config_rejects_impossible_values() -> None:
    with pytest.raises(ValueError):
        FixedDelayConfig(max_num_seqs=0)
    with pytest.raises(ValueError):
        FixedDelayConfig(ttft_s=-1.0)
