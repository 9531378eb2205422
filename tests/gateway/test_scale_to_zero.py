"""Scale-to-zero settings, and the gate's holding for a first replica over a real pool."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.admission import AdmissionGate, Overloaded
from gateway.metrics import GatewayMetrics
from gateway.settings import SettingsError, load_settings
from scheduler.pool import EndpointPool, ProbeResult

WORKER = "http://10.0.0.5:8000"


def test_models_as_a_list_or_with_their_own_timeouts(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "admission:\n"
        "  scale_to_zero:\n"
        "    hold_timeout_s: 90\n"
        "    models: {llama: {hold_timeout_s: 300}, qwen: {}, mistral: null}\n"
    )
    zero = load_settings(config).admission.scale_to_zero
    assert zero.hold_timeout("llama") == 300
    assert zero.hold_timeout("qwen") == zero.hold_timeout("mistral") == 90
    assert zero.hold_timeout("phi") is None  # not scaled to zero: 503 at once
    listed = load_settings(overrides={"admission": {"scale_to_zero": {"models": ["a", " b"]}}})
    assert set(listed.admission.scale_to_zero.models) == {"a", "b"}
    assert listed.admission.scale_to_zero.hold_timeout("b") == 120  # the default


def test_models_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEGATE_ADMISSION__SCALE_TO_ZERO__MODELS", '["llama"]')
    assert set(load_settings().admission.scale_to_zero.models) == {"llama"}


@pytest.mark.parametrize(
    ("admission", "problem"),
    [
        ({"enabled": False, "scale_to_zero": {"models": ["a"]}}, "set admission.enabled"),
        ({"scale_to_zero": {"models": {"a": {"hold_s": 1}}}}, r"models\.a\.hold_s"),
        ({"scale_to_zero": {"models": {"a": {"hold_timeout_s": 0}}}}, "greater than 0"),
        ({"scale_to_zero": {"models": [""]}}, "must not be empty"),
        ({"scale_to_zero": {"hold_timeout_s": -1}}, r"scale_to_zero\.hold_timeout_s"),
        ({"scale_to_zero": {"retry_after_s": 0}}, r"scale_to_zero\.retry_after_s"),
        ({"scale_to_zero": {"model": ["a"]}}, r"scale_to_zero\.model"),
    ],
)
def test_bad_scale_to_zero_settings_fail_at_load(
    admission: dict[str, object], problem: str
) -> None:
    with pytest.raises(SettingsError, match=problem):
        load_settings(overrides={"admission": admission})


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def gate_over(pool: EndpointPool, **admission: object) -> AdmissionGate:
    settings = load_settings(
        overrides={
            "discovery": {"workers": [WORKER]},
            "admission": {"scale_to_zero": {"models": ["llama"]}, **admission},
        }
    )
    return AdmissionGate(settings, pool, GatewayMetrics(CollectorRegistry(), pool), Clock())


def replica_ready(pool: EndpointPool) -> None:
    pool.record_probe(WORKER, ProbeResult(models=frozenset({"llama"})), Clock.now)


async def test_a_first_replica_takes_the_held_requests_up_to_what_fills_it() -> None:
    pool = EndpointPool()
    pool.set_urls([WORKER])
    gate = gate_over(pool, queue_threshold=4)
    # Sheddable requests are held too: the model is asleep, not overloaded.
    held = [asyncio.create_task(gate.enter("llama", 0, f"t{i}")) for i in range(6)]
    await asyncio.sleep(0)
    assert gate.queued()["llama"] == 6
    gate.wake_all()  # a probe round that found nothing: all still held
    await asyncio.sleep(0)
    assert gate.queued()["llama"] == 6 and not any(t.done() for t in held)

    replica_ready(pool)
    gate.wake_all()
    await asyncio.sleep(0)
    assert sum(t.done() for t in held) == 4  # queue_threshold fills one worker
    assert gate.queued()["llama"] == 2
    gate.wake_all()  # the next round (the worker still has room): the rest
    await asyncio.gather(*held)
    assert gate.queued()["llama"] == 0


async def test_a_full_hold_queue_sheds_and_other_models_are_not_held() -> None:
    pool = EndpointPool()
    pool.set_urls([WORKER])
    gate = gate_over(pool, max_queue=1)
    first = asyncio.create_task(gate.enter("llama", 1, ""))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded, match="queue full"):
        await gate.enter("llama", 1, "")
    await gate.enter("phi", 1, "")  # returns at once: routing will answer 503
    assert gate.queued() == {"llama": 1, "phi": 0}
    first.cancel()  # its client left
    with pytest.raises(asyncio.CancelledError):
        await first
    assert gate.queued()["llama"] == 0
