"""Fit a measured worker's step costs and API-server latency from a few fixed-shape timings.

What is measured on the real worker (``bench/sim_fidelity.py --part a``), all with random
token-id prompts (no prefix hits) and exact output lengths:

- **TTFT alone** for several prompt lengths ``n``: one prefill step, plus the time the
  request spends outside the engine (HTTP, the API server's input and output
  processing), ``frontend``::

      ttft(n) = frontend + step_overhead + (prefill_token + context_token) * n
                + attention_pair * n (n + 1) / 2

- **Decode ITL**: ``b`` users sending requests back to back (so requests start and end
  as in serving), each with about ``c`` tokens of context; the median gap::

      itl(b, c) = step_overhead + decode_token * b + (context_token + attention_pair) * b (c + 1)

  plus, when the figures bend upwards with ``b`` (per-sequence work outside the model
  no longer hides behind it), ``host_seq * max(0, b - kink)``.

- **TTFT of a short request joining** ``r`` decoding requests: the frontend latency
  grows with ``r``, because the API server (on the same two cores) is busy streaming
  their tokens; ``frontend = frontend_s + frontend_per_running_s * r``, fitted after the
  step costs from ``ttft = frontend + (half a decode step of waiting) + the joining step``.

Two weighted least-squares fits (TTFT: relative errors; decode: absolute) give the
intercepts and slopes; ``context_token`` is separated from ``prefill_token`` through
``attention_pair``, the only term the two fits share. Coefficients that noise would make
negative are pinned to zero and the rest refitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workers.sim.frontend import FrontendLatency
from workers.sim.profiles import MeasuredProfileSpec
from workers.sim.step_time import BatchShape, LinearCosts, LinearStepTime

_Seconds = Field(gt=0, allow_inf_nan=False)


class DecodeFigure(BaseModel):
    """Median inter-token gap while ``batch`` requests decode together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: int = Field(ge=1)
    context_tokens: float = Field(gt=0, description="mean per request while timed")
    itl_s: float = _Seconds


class JoinFigure(BaseModel):
    """Median TTFT of a ``prompt_tokens`` request sent while ``running`` requests decode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    running: int = Field(ge=0)
    running_context_tokens: float = Field(ge=0)
    prompt_tokens: int = Field(ge=1)
    ttft_s: float = _Seconds


class Calibration(BaseModel):
    """One calibration run of a real worker (the file ``bench/data/*_calibration.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    machine: dict[str, Any] = Field(default_factory=dict, description="where it ran")
    engine: dict[str, Any] = Field(default_factory=dict, description="the worker's config")
    ttft_s: Mapping[int, float] = Field(description="prompt tokens -> TTFT, one request alone")
    decode: Sequence[DecodeFigure]
    join: Sequence[JoinFigure] = ()
    notes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("ttft_s")
    @classmethod
    def _three_lengths(cls, value: Mapping[int, float]) -> Mapping[int, float]:
        if len(value) < 3 or any(n < 1 or t <= 0 for n, t in value.items()):
            raise ValueError("need TTFTs (> 0) for at least three prompt lengths (>= 1)")
        return value

    @field_validator("decode")
    @classmethod
    def _two_batches(cls, value: Sequence[DecodeFigure]) -> Sequence[DecodeFigure]:
        if len({f.batch for f in value}) < 2:
            raise ValueError("need decode ITLs for at least two batch sizes")
        return value


class CalibratedWorker(BaseModel):
    """What a calibration yields: the engine's step costs and the API server's latency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    costs: LinearCosts
    frontend: FrontendLatency


def fit_calibration(calibration: Calibration) -> CalibratedWorker:
    """Step costs from the decode and TTFT figures, then the API server's latency from
    the TTFT intercept and the join figures."""
    overhead, decode_token, kv_read, host_seq, host_slack = _fit_decode(calibration.decode)
    # TTFT alone: ttft = intercept + (prefill + context) * n + pair * n (n + 1) / 2,
    # relative errors (divide each row by its measured value).
    lengths = sorted(calibration.ttft_s)
    ttft_rows = [[1.0, n, n * (n + 1) / 2] for n in lengths]
    weights = [1 / calibration.ttft_s[n] for n in lengths]
    intercept, per_token, pair = nonnegative_least_squares(
        [[w * x for x in row] for row, w in zip(ttft_rows, weights, strict=True)],
        [1.0] * len(lengths),
        free=(0,),
    )
    pair = min(pair, kv_read)  # a decoding token's pairs are its KV reads: decode bounds it
    context = kv_read - pair
    costs = LinearCosts(
        step_overhead_s=overhead,
        prefill_token_s=max(per_token - context, 0.0),
        decode_token_s=decode_token,
        context_token_s=context,
        attention_pair_s=pair,
        host_seq_s=host_seq,
        host_slack_s=host_slack,
    )
    base = max(intercept - overhead, 0.0)
    return CalibratedWorker(
        costs=costs,
        frontend=FrontendLatency(
            base_s=base, per_running_s=_fit_join(calibration.join, costs, base)
        ),
    )


def _fit_decode(figures: Sequence[DecodeFigure]) -> tuple[float, float, float, float, float]:
    """``itl = overhead + decode_token * b + (context + pair) * b (c + 1)``, plus, if it
    fits the figures much better (a quarter less squared error), a hinge
    ``host_seq * max(0, b - kink)`` for the host work that no longer hides behind the
    model's above ``kink`` sequences (tried at each measured batch size but the smallest
    and the two largest). Returns (overhead, decode_token, kv_read, host_seq, host_slack)."""
    targets = [f.itl_s for f in figures]
    kv_varies = len({f.context_tokens for f in figures}) > 1

    def fit(kink: float | None) -> tuple[list[float], float]:
        rows = [
            [
                1.0,
                f.batch,
                f.batch * (f.context_tokens + 1) if kv_varies else 0.0,
                max(f.batch - kink, 0.0) if kink is not None else 0.0,
            ]
            for f in figures
        ]
        used = [j for j in range(4) if any(r[j] for r in rows)]
        solved = nonnegative_least_squares([[r[j] for j in used] for r in rows], targets, free=(0,))
        x = [0.0] * 4
        for j, value in zip(used, solved, strict=True):
            x[j] = value
        error = sum(
            (sum(a * b for a, b in zip(r, x, strict=True)) - t) ** 2
            for r, t in zip(rows, targets, strict=True)
        )
        return x, error

    line, line_error = fit(None)
    best, best_error = (line[0], line[1], line[2], 0.0, 0.0), 0.75 * line_error
    for kink in sorted({f.batch for f in figures})[1:-2]:
        try:
            x, error = fit(float(kink))
        except ValueError:
            continue
        if error < best_error and x[3] > 0:
            best, best_error = (x[0], x[1], x[2], x[3], x[3] * kink), error
    return best


def _fit_join(figures: Sequence[JoinFigure], costs: LinearCosts, base: float) -> float:
    """Least squares through the origin of the TTFT the step model leaves unexplained
    against the number of running requests."""
    model = LinearStepTime(costs)
    num = den = 0.0
    for f in figures:
        if f.running == 0:
            continue
        r, n, kv = f.running, f.prompt_tokens, int(f.running * (f.running_context_tokens + 1))
        decoding = model.step_seconds(BatchShape(r, r, 0, r, kv, kv))
        pairs = kv + n * (n + 1) // 2
        joining = model.step_seconds(BatchShape(r + 1, r + n, n, r + 1, kv + n, pairs))
        unexplained = f.ttft_s - base - decoding / 2 - joining
        num += r * unexplained
        den += r * r
    return max(num / den, 0.0) if den else 0.0


def nonnegative_least_squares(
    rows: Sequence[Sequence[float]], targets: Sequence[float], *, free: Sequence[int] = ()
) -> list[float]:
    """Least squares with every coefficient >= 0 except those in ``free``: solve, pin the
    most negative coefficient to zero, repeat (enough for the few, well-conditioned
    columns used here)."""
    width = len(rows[0])
    active = list(range(width))
    while True:
        solution = _least_squares([[row[j] for j in active] for row in rows], targets)
        pairs = zip(solution, active, strict=True)
        negative = [(v, j) for v, j in pairs if v < 0 and j not in free]
        if not negative:
            result = [0.0] * width
            for value, j in zip(solution, active, strict=True):
                result[j] = value
            return result
        active.remove(min(negative)[1])


def _least_squares(rows: Sequence[Sequence[float]], targets: Sequence[float]) -> list[float]:
    """Normal equations, solved by Gaussian elimination with partial pivoting; columns
    are scaled to unit norm first, as their magnitudes differ by orders of magnitude."""
    width = len(rows[0]) if rows else 0
    if width == 0:
        return []
    norms = [max(sum(row[j] ** 2 for row in rows) ** 0.5, 1e-300) for j in range(width)]
    scaled = [[row[j] / norms[j] for j in range(width)] for row in rows]
    a = [[sum(r[i] * r[j] for r in scaled) for j in range(width)] for i in range(width)]
    b = [sum(r[i] * t for r, t in zip(scaled, targets, strict=True)) for i in range(width)]
    for col in range(width):
        pivot = max(range(col, width), key=lambda i: abs(a[i][col]))
        if abs(a[pivot][col]) < 1e-12:
            raise ValueError("calibration figures do not determine the costs (singular fit)")
        a[col], a[pivot] = a[pivot], a[col]
        b[col], b[pivot] = b[pivot], b[col]
        for i in range(col + 1, width):
            factor = a[i][col] / a[col][col]
            for j in range(col, width):
                a[i][j] -= factor * a[col][j]
            b[i] -= factor * b[col]
    x = [0.0] * width
    for i in reversed(range(width)):
        x[i] = (b[i] - sum(a[i][j] * x[j] for j in range(i + 1, width))) / a[i][i]
    return [x[j] / norms[j] for j in range(width)]


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
