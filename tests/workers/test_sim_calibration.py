"""Fitting a measured worker's step costs and API-server latency from calibration figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from workers.sim.calibration import (
    Calibration,
    DecodeFigure,
    JoinFigure,
    fit_calibration,
    measured_profile,
    nonnegative_least_squares,
)
from workers.sim.frontend import FrontendLatency
from workers.sim.profiles import CPU_TINY_COSTS, CPU_TINY_FRONTEND, ProfileRegistry
from workers.sim.step_time import BatchShape, LinearCosts, LinearStepTime

CALIBRATION_FILE = (
    Path(__file__).resolve().parents[2] / "bench" / "data" / "cpu_tiny_calibration.json"
)

TRUE = LinearCosts(
    step_overhead_s=0.002,
    prefill_token_s=8e-6,
    decode_token_s=120e-6,
    context_token_s=0.1e-6,
    attention_pair_s=12e-9,
)
FRONTEND = FrontendLatency(base_s=0.007, per_running_s=0.0002)


def figures(costs: LinearCosts = TRUE, frontend: FrontendLatency = FRONTEND) -> Calibration:
    """What the real worker would measure if it behaved exactly like the model."""
    model = LinearStepTime(costs)

    def decode_step(batch: int, context: int) -> float:
        kv = batch * (context + 1)
        return model.step_seconds(BatchShape(batch, batch, 0, batch, kv, kv))

    ttft = {
        n: frontend.base_s + model.step_seconds(BatchShape(1, n, n, 1, n, n * (n + 1) // 2))
        for n in (16, 128, 512, 1024, 2000)
    }
    shapes = [*((b, 288) for b in (1, 2, 4, 8, 12, 16)), (4, 1088), (16, 1088)]
    decode = [DecodeFigure(batch=b, context_tokens=c, itl_s=decode_step(b, c)) for b, c in shapes]
    join = []
    for running in (0, 4, 8, 15):
        kv = running * 301
        joining = model.step_seconds(
            BatchShape(running + 1, running + 16, 16, running + 1, kv + 16, kv + 136)
        )
        waiting = decode_step(running, 300) / 2 if running else 0.0
        join.append(
            JoinFigure(
                running=running,
                running_context_tokens=300 if running else 0,
                prompt_tokens=16,
                ttft_s=frontend.seconds(running) + waiting + joining,
            )
        )
    return Calibration(ttft_s=ttft, decode=decode, join=join)


def test_fit_recovers_the_costs_that_produced_the_figures() -> None:
    fitted = fit_calibration(figures())
    for name, value in TRUE.model_dump().items():
        assert getattr(fitted.costs, name) == pytest.approx(value, rel=1e-6, abs=1e-12), name
    assert fitted.frontend.base_s == pytest.approx(FRONTEND.base_s, rel=1e-6)
    assert fitted.frontend.per_running_s == pytest.approx(FRONTEND.per_running_s, rel=1e-6)


def test_fit_finds_host_work_that_no_longer_hides_behind_the_model() -> None:
    """Above 4 sequences each one adds 0.3 ms of host work to the step."""
    with_host = TRUE.model_copy(update={"host_seq_s": 0.0003, "host_slack_s": 0.0012})
    fitted = fit_calibration(figures(with_host))
    for name, value in with_host.model_dump().items():
        assert getattr(fitted.costs, name) == pytest.approx(value, rel=1e-6, abs=1e-12), name
    assert fitted.frontend.per_running_s == pytest.approx(FRONTEND.per_running_s, rel=1e-6)


def test_a_straight_decode_line_gets_no_host_line() -> None:
    fitted = fit_calibration(figures())
    assert fitted.costs.host_seq_s == fitted.costs.host_slack_s == 0.0


def test_fit_tolerates_noise_without_negative_costs() -> None:
    exact = figures(TRUE.model_copy(update={"attention_pair_s": 0.0, "context_token_s": 0.0}))
    noisy = exact.model_copy(
        update={
            "ttft_s": {
                n: t * (0.97 if i % 2 else 1.03) for i, (n, t) in enumerate(exact.ttft_s.items())
            }
        }
    )
    fitted = fit_calibration(noisy)
    assert all(value >= 0 for value in fitted.costs.model_dump().values())
    assert fitted.costs.decode_token_s == pytest.approx(TRUE.decode_token_s, rel=1e-6)


def test_nonnegative_least_squares_pins_negative_slopes_to_zero() -> None:
    rows = [[1.0, x] for x in (1.0, 2.0, 3.0)]
    assert nonnegative_least_squares(rows, [3.0, 2.0, 1.0], free=(0,)) == pytest.approx([2.0, 0.0])
    assert nonnegative_least_squares(rows, [3.0, 5.0, 7.0]) == pytest.approx([1.0, 2.0])


@pytest.mark.parametrize(
    "update",
    [
        {"ttft_s": {10: 0.1, 20: 0.2}},
        {"ttft_s": {10: 0.1, 20: 0.2, 0: 0.05}},
        {"decode": [DecodeFigure(batch=4, context_tokens=100, itl_s=0.01)] * 2},
    ],
)
def test_calibrations_are_validated(update: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Calibration.model_validate({**figures().model_dump(), **update})


def test_fitted_costs_become_a_loadable_profile() -> None:
    spec = measured_profile(
        fit_calibration(figures()).costs,
        kv_bytes_per_token=1024,
        kv_cache_bytes=2**30,
        max_model_len=2048,
    )
    profile = ProfileRegistry([spec]).get("cpu-tiny")
    batch = BatchShape(4, 4, 0, 4, 400, 400)
    assert profile.step_time.step_seconds(batch) == pytest.approx(
        LinearStepTime(TRUE).step_seconds(batch)
    )


def test_builtin_cpu_tiny_is_the_fit_of_the_saved_calibration() -> None:
    fitted = fit_calibration(Calibration.model_validate_json(CALIBRATION_FILE.read_text()))
    for name, value in fitted.costs.model_dump().items():
        assert getattr(CPU_TINY_COSTS, name) == pytest.approx(value, rel=2e-3, abs=1e-12), name
    assert CPU_TINY_FRONTEND.base_s == pytest.approx(fitted.frontend.base_s, rel=2e-3)
    assert CPU_TINY_FRONTEND.per_running_s == pytest.approx(
        fitted.frontend.per_running_s, rel=2e-3, abs=1e-9
    )
