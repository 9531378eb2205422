"""The engine core's ``priority`` scheduling policy (vLLM's ``--scheduling-policy
priority``): the waiting queue ordered by (priority, arrival), lower first, and the lowest
priority, latest arrival preempted when KV blocks run out."""

from __future__ import annotations

import pytest

from workers.sim.core import EngineCore
from workers.sim.engine import RequestRecord
from workers.sim.engine_config import CoreRequest, EngineConfig
from workers.sim.sequence import SeqState
from workers.sim.step_time import BatchShape
from workers.sim.waiting import SchedulingPolicy, preemption_victim


class OneSecondSteps:
    def step_seconds(self, batch: BatchShape) -> float:
        return 1.0


def make_core(policy: SchedulingPolicy, *, seqs: int = 8, blocks: int = 64) -> EngineCore:
    config = EngineConfig(
        max_num_seqs=seqs,
        max_num_batched_tokens=64,
        block_size=4,
        enable_prefix_caching=False,
        scheduling_policy=policy,
    )
    max_len = min(32, blocks * 4)
    return EngineCore(config, num_blocks=blocks, max_model_len=max_len, step_time=OneSecondSteps())


def run_all(core: EngineCore) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    now = 0.0
    while (step := core.begin_step(now)) is not None:
        records += core.complete_step(step).finished
        now = step.ends_at
    return records


@pytest.mark.parametrize(
    ("policy", "arrivals", "finish_order"),
    [
        # (request id, priority, arrival time); one request runs at a time.
        ("fcfs", [("a", 0, 0.0), ("b", 5, 0.1), ("c", -1, 0.2)], ["a", "b", "c"]),
        ("priority", [("a", 0, 0.0), ("b", 5, 0.1), ("c", -1, 0.2)], ["a", "c", "b"]),
        ("priority", [("a", 1, 0.0), ("b", 1, 0.1), ("c", 1, 0.2)], ["a", "b", "c"]),
        ("priority", [("a", 3, 0.0), ("b", 2, 0.1), ("c", 2, 0.2), ("d", 1, 0.3)],
         ["a", "d", "b", "c"]),
    ],
)  # fmt: skip
def test_waiting_requests_start_in_policy_order(
    policy: SchedulingPolicy, arrivals: list[tuple[str, int, float]], finish_order: list[str]
) -> None:
    core = make_core(policy, seqs=1)
    first_id, first_priority, first_at = arrivals[0]
    core.add_request(CoreRequest(first_id, 4, 2, priority=first_priority), first_at)
    step = core.begin_step(0.0)  # the first one is running before the others arrive
    assert step is not None
    core.complete_step(step)
    for rid, priority, at in arrivals[1:]:
        core.add_request(CoreRequest(rid, 4, 2, priority=priority), at)
    assert [r.request_id for r in run_all(core)] == finish_order


@pytest.mark.parametrize(
    ("policy", "running", "victim"),
    [
        # (priority, arrival) of each running request, in admission order.
        ("fcfs", [(0, 0.0), (9, 1.0), (0, 2.0)], 2),
        ("priority", [(0, 0.0), (9, 1.0), (0, 2.0)], 1),
        ("priority", [(5, 0.0), (5, 3.0), (5, 1.0)], 1),
        ("priority", [(1, 0.0)], 0),
    ],
)
def test_preemption_victim(
    policy: SchedulingPolicy, running: list[tuple[int, float]], victim: int
) -> None:
    seqs = [
        SeqState(CoreRequest(f"r{i}", 4, 2, priority=p), i, at) for i, (p, at) in enumerate(running)
    ]
    assert preemption_victim(seqs, policy) == victim


@pytest.mark.parametrize(
    ("policy", "preempted", "first_done"),
    [("fcfs", "urgent", "low"), ("priority", "low", "urgent")],
)
def test_out_of_blocks_preempts_by_policy(
    policy: SchedulingPolicy, preempted: str, first_done: str
) -> None:
    # 6 blocks of 4 tokens: two 8-token prompts take 2 blocks each, then both grow until
    # one must give its blocks up. "low" was admitted first, "urgent" second.
    core = make_core(policy, blocks=6)
    core.add_request(CoreRequest("low", 8, 12, priority=1), 0.0)
    core.add_request(CoreRequest("urgent", 8, 12, priority=0), 0.0)
    records = run_all(core)
    by_id = {r.request_id: r for r in records}
    assert by_id[preempted].num_preemptions >= 1
    assert by_id[first_done].num_preemptions == 0
    assert records[0].request_id == first_done
    assert {r: by_id[r].num_generated for r in by_id} == {"low": 12, "urgent": 12}
    assert core.pool.num_used == 0


def test_a_preempted_request_resumes_before_later_arrivals_of_its_priority() -> None:
    core = make_core("priority", seqs=2, blocks=6)
    core.add_request(CoreRequest("a", 8, 12, priority=1), 0.0)
    core.add_request(CoreRequest("b", 8, 12, priority=1), 0.1)  # the later: the victim
    step = core.begin_step(0.1)
    assert step is not None
    core.complete_step(step)
    core.add_request(CoreRequest("late", 4, 1, priority=1), 0.5)
    now = 1.0
    while (step := core.begin_step(now)) is not None and not step.num_preempted:
        core.complete_step(step)
        now = step.ends_at
    assert step is not None
    assert core._waiting.peek().rid == "b"  # ahead of "late", which arrived after it
    core.complete_step(step)
    assert {r.request_id for r in run_all(core)} == {"a", "b", "late"}
