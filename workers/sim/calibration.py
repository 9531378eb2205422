"""Fit a measured worker's step costs (``LinearCosts``) from a few single-request timings.

What is measured on the real worker, one request at a time (or a fixed batch):

- TTFT for several prompt lengths: one prefill step each, so
  ``ttft(n) = step_overhead + prefill_step_extra + prefill_token_s * n``;
- ITL with one request decoding: ``itl_1 = step_overhead + decode_token_s``;
- ITL with ``batch`` requests decoding together:
  ``itl_b = step_overhead + decode_token_s * batch``.

The two ITLs give the decode cost and the per-step overhead; a least-squares line through
the TTFTs gives the prefill cost per token, and its intercept above the step overhead
becomes the extra cost of a step that carries prompt tokens (on the CPU backend, prefill
runs different kernels and the API server adds per-request work before the first token).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workers.sim.profiles import MeasuredProfileSpec
from workers.sim.step_time import LinearCosts


class StepMeasurements(BaseModel):
    """Timings of the real worker, in seconds; prompt lengths in tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft_s: Mapping[int, float] = Field(description="prompt tokens -> time to first token")
    itl_s_batch_1: float = Field(gt=0)
    itl_s_batch: float = Field(gt=0, description="ITL while `batch` requests decode")
    batch: int = Field(ge=2)

    @field_validator("ttft_s")
    @classmethod
    def _two_lengths(cls, value: Mapping[int, float]) -> Mapping[int, float]:
        if len(value) < 2 or any(n < 1 or t <= 0 for n, t in value.items()):
            raise ValueError("need TTFTs (> 0) for at least two prompt lengths (>= 1)")
        return value


def fit_linear_costs(m: StepMeasurements) -> LinearCosts:
    """Least-squares fit of ``LinearCosts`` to the measurements (negative slopes, which
    only noise can produce, are clamped to zero)."""
    decode = max((m.itl_s_batch - m.itl_s_batch_1) / (m.batch - 1), 0.0)
    overhead = max(m.itl_s_batch_1 - decode, 0.0)
    lengths = list(m.ttft_s)
    times = [m.ttft_s[n] for n in lengths]
    mean_n = sum(lengths) / len(lengths)
    mean_t = sum(times) / len(times)
    spread = sum((n - mean_n) ** 2 for n in lengths)
    slope = sum((n - mean_n) * (t - mean_t) for n, t in zip(lengths, times, strict=True))
    prefill = max(slope / spread, 0.0) if spread else 0.0
    intercept = mean_t - prefill * mean_n
    return LinearCosts(
        step_overhead_s=overhead,
        prefill_token_s=prefill,
        decode_token_s=decode,
        prefill_step_extra_s=max(intercept - overhead, 0.0),
    )


def measured_profile(
    costs: LinearCosts,
    *,
    name: str = "cpu-tiny",
    kv_bytes_per_token: float,
    kv_cache_bytes: float,
    max_model_len: int,
) -> MeasuredProfileSpec:
    """A profile spec for a profile file (``ProfileRegistry.with_file``)."""
    return MeasuredProfileSpec(
        name=name,
        costs=costs,
        kv_bytes_per_token=kv_bytes_per_token,
        kv_cache_bytes=kv_cache_bytes,
        max_model_len=max_model_len,
        description="fitted by workers.sim.calibration from measurements",
    )
