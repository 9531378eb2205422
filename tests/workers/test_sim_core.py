"""EngineCore on virtual time: batching limits, chunked prefill, block accounting,
preemption by recompute, prefix caching and aborts."""

from __future__ import annotations

import pytest

from workers.sim.core import EngineCore
from workers.sim.engine import RequestRecord
from workers.sim.engine_config import CoreRequest, EngineConfig
from workers.sim.sequence import Step, StepOutput
from workers.sim.step_time import BatchShape


class ConstantStep:
    """Every step takes ``seconds``; remembers the batches it was asked about."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self.batches: list[BatchShape] = []

    def step_seconds(self, batch: BatchShape) -> float:
        self.batches.append(batch)
        return self.seconds


def make_core(
    *,
    seqs: int = 8,
    budget: int = 64,
    block_size: int = 4,
    blocks: int = 64,
    caching: bool = True,
    max_len: int = 64,
) -> EngineCore:
    config = EngineConfig(
        max_num_seqs=seqs,
        max_num_batched_tokens=budget,
        block_size=block_size,
        enable_prefix_caching=caching,
    )
    return EngineCore(config, num_blocks=blocks, max_model_len=max_len, step_time=ConstantStep())


def req(
    rid: str, prompt: int, output: int = 4, hashes: tuple[int, ...] | None = None
) -> CoreRequest:
    return CoreRequest(rid, prompt, output, "length", hashes)


def step(core: EngineCore, now: float | None = None) -> tuple[Step, StepOutput]:
    started = core.begin_step(0.0 if now is None else now)
    assert started is not None
    return started, core.complete_step(started)


def run_all(core: EngineCore, now: float = 0.0) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    while (started := core.begin_step(now)) is not None:
        records += core.complete_step(started).finished
        now = started.ends_at
    return records


@pytest.mark.parametrize(
    ("max_num_seqs", "submitted", "running", "waiting"),
    [(4, 1, 1, 0), (4, 4, 4, 0), (4, 7, 4, 3), (1, 3, 1, 2)],
)
def test_batch_holds_at_most_max_num_seqs(
    max_num_seqs: int, submitted: int, running: int, waiting: int
) -> None:
    core = make_core(seqs=max_num_seqs)
    for i in range(submitted):
        core.add_request(req(f"r{i}", 4), 0.0)
    started, _ = step(core)
    assert (core.num_running, core.num_waiting) == (running, waiting)
    assert started.batch.num_seqs == running
    snap = core.snapshot()
    assert (snap.num_running, snap.num_waiting) == (running, waiting)


@pytest.mark.parametrize(
    ("budget", "prompt", "chunks"),
    [
        (10, 20, [7, 7, 6]),  # three decodes take 3 of each step's 10 tokens
        (10, 7, [7]),
        (5, 9, [2, 2, 2, 2, 1]),
        (64, 40, [40]),
    ],
)
def test_chunked_prefill_shares_the_token_budget_with_decodes(
    budget: int, prompt: int, chunks: list[int]
) -> None:
    core = make_core(budget=budget, max_len=128, blocks=128)
    for i in range(3):
        core.add_request(req(f"d{i}", 1, output=50), 0.0)
    step(core)  # the three one-token prompts are prefilled and sample a token each
    core.add_request(req("big", prompt, output=2), 0.0)
    seen = []
    while True:
        started, output = step(core)
        assert started.batch.num_tokens <= budget
        assert started.batch.num_decode_tokens == 3
        seen.append(started.batch.num_prefill_tokens)
        if any(e.request_id == "big" for e in output.emissions):
            break
    assert seen == chunks


@pytest.mark.parametrize(("prompt", "budget", "steps"), [(8, 8, 1), (9, 8, 2), (100, 8, 13)])
def test_first_token_comes_after_the_last_prefill_chunk(
    prompt: int, budget: int, steps: int
) -> None:
    core = make_core(budget=budget, max_len=128, blocks=64)
    core.add_request(req("a", prompt, output=1), 0.0)
    (record,) = run_all(core)
    assert record.first_token_at == steps  # each step takes 1 s
    assert core.num_steps == steps


def test_blocks_follow_the_tokens_and_are_freed_at_the_end() -> None:
    core = make_core(block_size=4)
    core.add_request(req("a", 6, output=4), 0.0)
    used = []
    for _ in range(4):
        step(core)
        used.append(core.pool.num_used)
    # KV for 6, 7, 8, then 9 tokens (the last sampled token has no KV yet).
    assert used == [2, 2, 2, 0]
    assert core.pool.num_cached == 2  # full blocks stay reusable after the request
    assert core.snapshot().kv_cache_usage == 0.0


def test_out_of_blocks_preempts_the_latest_admitted_and_recomputes_it() -> None:
    core = make_core(block_size=4, blocks=5, max_len=20, caching=False)
    core.add_request(req("a", 8, output=8), 0.0)
    core.add_request(req("b", 8, output=8), 0.0)
    core.add_request(req("c", 8, output=1), 0.0)
    step(core)  # a, b prefilled (2 blocks each); c cannot fit, waits
    assert (core.num_running, core.num_waiting) == (2, 1)
    preempted_at = None
    records: list[RequestRecord] = []
    for n in range(40):
        started, output = step(core, float(n))
        records += output.finished
        if started.num_preempted and preempted_at is None:
            preempted_at = n
            assert (core.num_running, core.num_waiting) == (1, 2)
            assert core._waiting.peek().rid == "b"  # back at the front, ahead of c
        if not core.has_work:
            break
    assert preempted_at is not None
    by_id = {r.request_id: r for r in records}
    assert records[0].request_id == "a"
    assert by_id["b"].num_preemptions == 1 and by_id["a"].num_preemptions == 0
    assert {r: by_id[r].num_generated for r in by_id} == {"a": 8, "b": 8, "c": 1}
    snap = core.snapshot()
    assert snap.num_preemptions_total == 1
    assert snap.generation_tokens_total == 17
    assert core.pool.num_used == 0


def test_recompute_after_preemption_reuses_the_victims_cached_blocks() -> None:
    model = ConstantStep()
    core = EngineCore(EngineConfig(block_size=4), num_blocks=7, max_model_len=28, step_time=model)
    core.add_request(req("a", 12, output=3), 0.0)
    core.add_request(req("b", 12, output=6), 0.0)
    records = {r.request_id: r for r in run_all(core)}
    assert records["b"].num_preemptions == 1
    assert records["b"].num_generated == 6
    # After a finished, b came back with 13 known tokens: its 3 full blocks were still
    # cached, so the recompute step computed only the last token.
    readmitted = model.batches[3]
    assert (readmitted.num_seqs, readmitted.num_tokens, readmitted.context_tokens) == (1, 1, 13)
    # The prefix-cache counters count first admissions only, as vLLM's do.
    assert core.snapshot().prefix_cache_queries_total == 24


@pytest.mark.parametrize(("prompt", "block_size", "hit"), [(8, 4, 4), (9, 4, 8), (16, 4, 12)])
def test_a_repeated_prompt_hits_its_full_blocks_but_recomputes_the_last_token(
    prompt: int, block_size: int, hit: int
) -> None:
    core = make_core(block_size=block_size)
    hashes = tuple(range(100, 100 + prompt // block_size))
    core.add_request(req("first", prompt, output=1, hashes=hashes), 0.0)
    core.add_request(req("second", prompt, output=1, hashes=hashes), 10.0)
    first, second = run_all(core)
    # Blocks are registered when scheduled, so a request later in the same step
    # already hits them (vLLM writes the KV before attention reads it).
    assert (first.cached_prompt_tokens, second.cached_prompt_tokens) == (0, hit)
    core.add_request(req("third", prompt, output=1, hashes=hashes), 20.0)
    (third,) = run_all(core, 20.0)
    assert third.cached_prompt_tokens == hit
    snap = core.snapshot()
    assert snap.prefix_cache_queries_total == 3 * prompt
    assert snap.prefix_cache_hits_total == 2 * hit


def test_a_common_prefix_hits_up_to_the_first_differing_block() -> None:
    core = make_core(block_size=4)
    shared = (1, 2, 3)
    core.add_request(req("a", 17, output=1, hashes=(*shared, 4)), 0.0)
    run_all(core)
    core.add_request(req("b", 17, output=1, hashes=(*shared, 5)), 5.0)
    core.add_request(req("c", 17, output=1, hashes=(9, *shared[1:], 4)), 5.0)
    b, c = run_all(core, 5.0)
    assert b.cached_prompt_tokens == 12  # the shared three blocks, not the fourth
    assert c.cached_prompt_tokens == 0  # chained: a different first block shares nothing


def test_unreferenced_cached_prefixes_are_evicted_least_recently_used_first() -> None:
    core = make_core(block_size=4, blocks=10, max_len=40)
    old, new = (11, 12), (21, 22)
    for rid, hashes, t in (("old", old, 0.0), ("new", new, 10.0)):
        core.add_request(req(rid, 9, output=1, hashes=hashes), t)
        run_all(core, t)
    assert core.pool.num_cached == 4
    # 7 of the 10 blocks: the 4 oldest free ones first, so "old" loses its blocks.
    core.add_request(req("filler", 28, output=1), 20.0)
    run_all(core, 20.0)
    core.add_request(req("new-again", 9, output=1, hashes=new), 30.0)
    (new_again,) = run_all(core, 30.0)
    core.add_request(req("old-again", 9, output=1, hashes=old), 40.0)
    (old_again,) = run_all(core, 40.0)
    assert (new_again.cached_prompt_tokens, old_again.cached_prompt_tokens) == (8, 0)


@pytest.mark.parametrize("where", ["running", "waiting"])
def test_abort_frees_everything_at_once(where: str) -> None:
    core = make_core(seqs=1)
    core.add_request(req("a", 8, output=5), 0.0)
    core.add_request(req("b", 8, output=5), 0.0)
    step(core)
    target = "a" if where == "running" else "b"
    record = core.abort_request(target, 3.0)
    assert record is not None
    assert (record.finish_reason, record.finished_at) == ("abort", 3.0)
    assert core.abort_request(target, 4.0) is None
    records = run_all(core, 3.0)
    assert [r.request_id for r in records] == ["b" if target == "a" else "a"]
    assert core.pool.num_used == 0


def test_abort_while_the_step_runs_drops_that_requests_output() -> None:
    core = make_core()
    core.add_request(req("a", 4, output=3), 0.0)
    started = core.begin_step(0.0)
    assert started is not None
    core.abort_request("a", 0.5)
    assert core.complete_step(started).emissions == []
    assert not core.has_work


def test_step_time_and_batch_shape_come_from_the_model() -> None:
    model = ConstantStep(0.25)
    core = EngineCore(EngineConfig(block_size=4), num_blocks=32, max_model_len=64, step_time=model)
    core.add_request(req("a", 3, output=2), 0.0)
    started, _ = step(core, 2.0)
    assert (started.started_at, started.ends_at) == (2.0, 2.25)
    assert model.batches[-1] == BatchShape(1, 3, 3, 1, 3, 6)
    started, _ = step(core, 2.25)
    assert model.batches[-1] == BatchShape(1, 1, 0, 1, 4, 4)


@pytest.mark.parametrize(("prompt", "output"), [(0, 1), (64, 1), (10, 0), (10, 55)])
def test_requests_must_fit_the_context(prompt: int, output: int) -> None:
    with pytest.raises(ValueError):
        make_core().add_request(req("a", prompt, output), 0.0)


def test_the_cache_must_hold_one_longest_request() -> None:
    with pytest.raises(ValueError):
        make_core(blocks=3, block_size=4, max_len=13)
    core = make_core()
    core.add_request(req("a", 4), 0.0)
    with pytest.raises(ValueError):
        core.add_request(req("a", 4), 0.0)
