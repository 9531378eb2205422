"""A controller pass over an in-memory API: one ModelScaler's trouble never stops the
others, signals are asked once per pass, memory follows the objects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import pytest

from autoscaler.controller.loop import Controller, run
from autoscaler.policy.observation import Observation
from tests.controller.support import (
    FakeClock,
    FakeTarget,
    FixedSignals,
    MemoryApi,
    pool,
    scaler_object,
    scaler_spec,
)


def llama_pools(prefix: str = "llama") -> list[dict[str, object]]:
    return [
        pool("on-demand", "on-demand", f"{prefix}-od", price=4.0, min_replicas=1, max_replicas=4),
        pool("spot", "spot", f"{prefix}-spot", price=1.4, max_replicas=20),
    ]


def conditions(api: MemoryApi, name: str) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in api.statuses[name]["conditions"]}


async def test_a_bad_spec_or_a_missing_target_does_not_stop_the_others() -> None:
    bad = scaler_spec(llama_pools("bad"))
    del bad["pools"][0]["maxReplicas"]  # an old CRD without validation let it in
    api = MemoryApi(
        [
            scaler_object("bad", bad),
            scaler_object("qwen", scaler_spec(llama_pools("qwen"), model="qwen")),
            scaler_object("llama", scaler_spec(llama_pools())),
        ],
        {"llama-od": FakeTarget(1, 1), "llama-spot": FakeTarget(1, 1), "qwen-od": FakeTarget(1, 1)},
    )
    signals = FixedSignals(llama={"arrival_rps": 10.0}, qwen={"arrival_rps": 4.0})
    results = await Controller(api, signals, FakeClock()).reconcile_all()

    assert [r.key for r in results] == ["llm/bad", "llm/qwen", "llm/llama"]
    assert results[0].error is not None and "pools.0.maxReplicas" in results[0].error
    assert conditions(api, "bad")["AbleToScale"]["reason"] == "InvalidSpec"
    assert conditions(api, "qwen")["AbleToScale"]["reason"] == "TargetNotFound"
    assert api.targets["qwen-od"].replicas == 2  # its other pool still scaled
    assert conditions(api, "llama")["AbleToScale"]["reason"] == "SucceededRescale"
    assert api.writes == [("qwen-od", 2), ("llama-spot", 5)]
    assert signals.asked == [{"qwen": 1, "llama": 2}]  # once per pass, every model


class Broken:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def observe(
        self, ready_replicas: Mapping[str, int], now: float
    ) -> dict[str, Observation]:
        if isinstance(self.error, TimeoutError):
            await asyncio.sleep(10)
        raise self.error

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("error", [TimeoutError(), ConnectionRefusedError()])
async def test_signals_that_fail_or_hang_hold_the_count(error: BaseException) -> None:
    api = MemoryApi(
        [scaler_object("llama", scaler_spec(llama_pools(), spot={"overProvision": 0}))],
        {"llama-od": FakeTarget(1, 1), "llama-spot": FakeTarget(5, 5)},
    )
    controller = Controller(api, Broken(error), FakeClock(), signal_timeout_s=0.01)
    (result,) = await controller.reconcile_all()
    assert result.reconciled is not None and result.reconciled.decision.replicas == 6
    assert conditions(api, "llama")["ScalingActive"]["reason"] == "SignalsStale"
    assert api.writes == []


async def test_memory_carries_rate_limits_between_passes_and_follows_the_objects() -> None:
    api = MemoryApi(
        [scaler_object("llama", scaler_spec(llama_pools(), spot={"overProvision": 0}))],
        {"llama-od": FakeTarget(1, 1), "llama-spot": FakeTarget(1, 1)},
    )
    clock = FakeClock()
    controller = Controller(api, FixedSignals(llama={"arrival_rps": 40.0}), clock)
    await controller.reconcile_all()
    assert api.targets["llama-spot"].replicas == 9  # 2 + 8 per minute
    clock.advance(30)
    (result,) = await controller.reconcile_all()
    assert api.targets["llama-spot"].replicas == 9  # the minute's budget is spent
    assert result.reconciled is not None and result.reconciled.decided_by == "rate-limit"
    assert conditions(api, "llama")["ScalingLimited"]["status"] == "True"
    clock.advance(31)
    await controller.reconcile_all()
    assert api.targets["llama-spot"].replicas == 17

    api.targets["llama-spot"].ready = 17
    api.scalers[0]["metadata"]["uid"] = "recreated"
    api.scalers[0]["status"] = {}
    clock.advance(1)
    (fresh,) = await controller.reconcile_all()
    assert fresh.reconciled is not None
    assert fresh.reconciled.decision.steps[0].replicas == 18  # ready replicas, not memory


async def test_each_pass_logs_one_line_naming_the_step(caplog: pytest.LogCaptureFixture) -> None:
    api = MemoryApi(
        [scaler_object("llama", scaler_spec(llama_pools()))],
        {"llama-od": FakeTarget(1, 1), "llama-spot": FakeTarget(1, 1)},
    )
    with caplog.at_level(logging.INFO, logger="autoscaler.controller.loop"):
        await Controller(
            api, FixedSignals(llama={"arrival_rps": 10.0}), FakeClock()
        ).reconcile_all()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "autoscaler.controller.loop"]
    assert line.startswith("llm/llama model=llama replicas 2 -> 5 set by demand (")


async def test_the_loop_survives_a_failing_pass(caplog: pytest.LogCaptureFixture) -> None:
    class Exploding(MemoryApi):
        def list_scalers(self, namespace: str | None) -> list[dict[str, object]]:
            raise RuntimeError("bug")

    stop, ticks = asyncio.Event(), []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 3:
            stop.set()

    await run(Controller(Exploding(), FixedSignals(), FakeClock()), 0.001, stop, None, tick)
    assert len(ticks) == 3
    assert sum("reconcile pass failed" in r.getMessage() for r in caplog.records) == 3
