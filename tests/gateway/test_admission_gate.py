"""The gate's room per priority class: with ``max_running_per_worker`` 2, ``queue_threshold``
1 and one request of headroom for critical, a worker running 3 of ours is full for standard
requests and has room for one more critical one."""

from __future__ import annotations

import asyncio

import pytest

from gateway.admission import AdmissionGate, Overloaded
from scheduler.endpoint import EngineStats
from scheduler.pool import EndpointPool, ProbeResult
from tests.gateway.support import MODEL, NOW, probed_gate, settle

WORKER = "http://10.0.0.5:8000"
CRITICAL, STANDARD, SHEDDABLE = 2, 1, 0


def gate_with(in_flight: int, **admission: object) -> tuple[AdmissionGate, EndpointPool]:
    gate, pool = probed_gate(
        [WORKER],
        {
            "max_running_per_worker": 2,
            "queue_threshold": 1,
            "priority_headroom": {CRITICAL: 1},
            **admission,
        },
    )
    for _ in range(in_flight):
        pool.acquire(WORKER)
    return gate, pool


@pytest.mark.parametrize(
    ("in_flight", "priority", "outcome"),
    [
        (2, STANDARD, "enters"),
        (2, SHEDDABLE, "enters"),
        (3, STANDARD, "held"),
        (3, CRITICAL, "enters"),  # its headroom
        (3, SHEDDABLE, "shed"),
        (4, CRITICAL, "held"),  # headroom used up
    ],
)
async def test_a_request_enters_at_once_only_while_its_class_has_room(
    in_flight: int, priority: int, outcome: str
) -> None:
    gate, _ = gate_with(in_flight)
    assert (gate.saturation(MODEL, priority) < 1) == (outcome == "enters")
    entering = asyncio.ensure_future(gate.enter(MODEL, priority, ""))
    await settle()
    if outcome == "shed":
        with pytest.raises(Overloaded, match="sheddable"):
            await entering
        return
    assert entering.done() == (outcome == "enters")
    assert gate.queued()[MODEL] == (outcome == "held")
    entering.cancel()
    await settle()


async def test_a_critical_request_passes_standard_ones_that_are_held() -> None:
    gate, _ = gate_with(3)
    held = [asyncio.ensure_future(gate.enter(MODEL, STANDARD, f"t{i}")) for i in range(2)]
    await settle()
    assert gate.queued()[MODEL] == 2
    await asyncio.wait_for(gate.enter(MODEL, CRITICAL, "t9"), 1)  # not queued behind them
    assert not any(t.done() for t in held)
    for task in held:
        task.cancel()
    await settle()
    assert gate.queued()[MODEL] == 0


async def test_a_newcomer_does_not_overtake_a_held_request_of_its_class() -> None:
    gate, pool = gate_with(4)
    first = asyncio.ensure_future(gate.enter(MODEL, CRITICAL, "a"))
    await settle()
    pool.release(WORKER)  # room for one critical request, not yet handed out
    second = asyncio.ensure_future(gate.enter(MODEL, CRITICAL, "b"))
    await settle()
    assert first.done() and not second.done()
    assert gate.queued()[MODEL] == 1
    second.cancel()
    await settle()


async def test_held_requests_are_released_in_priority_order_when_their_class_has_room() -> None:
    gate, pool = gate_with(4)
    order: list[str] = []

    async def request(name: str, priority: int) -> None:
        await gate.enter(MODEL, priority, name)
        order.append(name)
        pool.acquire(WORKER)  # dispatched: it runs on the worker

    tasks = []
    for name, priority in [("s1", STANDARD), ("c1", CRITICAL), ("s2", STANDARD), ("c2", CRITICAL)]:
        tasks.append(asyncio.ensure_future(request(name, priority)))
        await settle()
    assert order == [] and gate.queued()[MODEL] == 4

    def finish_one() -> None:
        pool.release(WORKER)
        gate.completed(MODEL)

    finish_one()  # 3 running: room for critical only
    await settle()
    finish_one()
    await settle()
    assert order == ["c1", "c2"]
    finish_one()  # 3 running again: the head is standard, and standard has no room
    await settle()
    assert order == ["c1", "c2"] and gate.queued()[MODEL] == 2
    finish_one()  # 2 running: standard has room
    await settle()
    finish_one()
    await settle()
    assert order == ["c1", "c2", "s1", "s2"]
    await asyncio.gather(*tasks)


async def test_without_max_running_the_headroom_changes_nothing() -> None:
    gate, _ = gate_with(50, max_running_per_worker=None)
    assert gate.saturation(MODEL, CRITICAL) == gate.saturation(MODEL, STANDARD) == 0


@pytest.mark.parametrize(
    ("slots_only", "critical_enters"),
    [(None, False), (CRITICAL, True)],
)
async def test_slots_only_lets_critical_past_a_long_engine_queue(
    slots_only: int | None, critical_enters: bool
) -> None:
    gate, pool = gate_with(1, slots_only_at_or_above=slots_only)
    busy = EngineStats(running=1, waiting=5, kv_cache_usage=0.99)  # a backlog of standard work
    pool.record_probe(WORKER, ProbeResult(models=frozenset({MODEL}), stats={MODEL: busy}), NOW)
    assert gate.saturation(MODEL, STANDARD) >= 1  # the rest wait either way
    assert (gate.saturation(MODEL, CRITICAL) < 1) is critical_enters
    entering = asyncio.ensure_future(gate.enter(MODEL, CRITICAL, ""))
    await settle()
    assert entering.done() is critical_enters
    entering.cancel()
    await settle()
