"""Fitting a measured profile's costs from single-request timings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workers.sim.calibration import StepMeasurements, fit_linear_costs, measured_profile
from workers.sim.profiles import ProfileRegistry
from workers.sim.step_time import BatchShape, LinearCosts, LinearStepTime

TRUE = LinearCosts(
    step_overhead_s=0.012,
    prefill_token_s=30e-6,
    decode_token_s=400e-6,
    prefill_step_extra_s=0.004,
)


def measure(costs: LinearCosts, batch: int = 8) -> StepMeasurements:
    """What timing the real worker would give if it behaved exactly like ``costs``."""
    model = LinearStepTime(costs)
    ttft = {n: model.step_seconds(BatchShape(1, n, n, 1, n, 0)) for n in (16, 128, 512, 1024)}
    itl = {b: model.step_seconds(BatchShape(b, b, 0, b, 100 * b, 100 * b)) for b in (1, batch)}
    return StepMeasurements(ttft_s=ttft, itl_s_batch_1=itl[1], itl_s_batch=itl[batch], batch=batch)


def test_fit_recovers_the_costs_that_produced_the_measurements() -> None:
    fitted = fit_linear_costs(measure(TRUE))
    for field in ("step_overhead_s", "prefill_token_s", "decode_token_s", "prefill_step_extra_s"):
        assert getattr(fitted, field) == pytest.approx(getattr(TRUE, field), rel=1e-9, abs=1e-12)


def test_fit_is_least_squares_through_noisy_ttfts() -> None:
    m = measure(TRUE)
    noisy = {n: t * (1.02 if i % 2 else 0.98) for i, (n, t) in enumerate(m.ttft_s.items())}
    fitted = fit_linear_costs(m.model_copy(update={"ttft_s": noisy}))
    assert fitted.prefill_token_s == pytest.approx(TRUE.prefill_token_s, rel=0.1)
    assert fitted.decode_token_s == pytest.approx(TRUE.decode_token_s)


def test_noise_never_yields_negative_costs() -> None:
    fitted = fit_linear_costs(
        StepMeasurements(
            ttft_s={10: 0.05, 20: 0.04}, itl_s_batch_1=0.02, itl_s_batch=0.019, batch=4
        )
    )
    assert fitted.prefill_token_s == 0.0 and fitted.decode_token_s == 0.0
    assert fitted.step_overhead_s == 0.02


@pytest.mark.parametrize(
    "fields",
    [
        {"ttft_s": {10: 0.1}},
        {"ttft_s": {10: 0.1, 0: 0.05}},
        {"batch": 1},
        {"itl_s_batch_1": 0.0},
    ],
)
def test_measurements_are_validated(fields: dict[str, object]) -> None:
    base = {"ttft_s": {10: 0.1, 20: 0.2}, "itl_s_batch_1": 0.01, "itl_s_batch": 0.02, "batch": 4}
    with pytest.raises(ValidationError):
        StepMeasurements.model_validate({**base, **fields})


def test_fitted_costs_become_a_loadable_profile() -> None:
    spec = measured_profile(
        fit_linear_costs(measure(TRUE)),
        kv_bytes_per_token=1024,
        kv_cache_bytes=2**30,
        max_model_len=2048,
    )
    profile = ProfileRegistry([spec]).get("cpu-tiny")
    batch = BatchShape(4, 4, 0, 4, 400, 400)
    assert profile.step_time.step_seconds(batch) == pytest.approx(
        LinearStepTime(TRUE).step_seconds(batch)
    )
