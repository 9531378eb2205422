"""Arrivals for a what-if: a request-level trace as recorded, or a day of an aggregate rate
curve (ServeGen's 10-minute windows) with lengths drawn from a request-level trace.

Time compression: a day of arrivals at their real rates would take tens of minutes of CPU
to replay, so the curve's time axis is divided by ``time_scale`` (k) while rates stay as
they are. Requests and engines run on their own clock ("virtual" seconds); the cluster,
the autoscalers and the bill run on the scenario's clock, k times faster: one virtual
second is k scenario seconds. A replay at k=24 covers 24 scenario hours in one virtual
hour, each replica sees the load it would see in the real day, and provisioning delay,
notice periods and policy windows keep their ratios to the load curve.
"""

from __future__ import annotations

import bisect
import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.sim.replay import ReplayRequest

DAY_S = 86_400.0


@dataclass(frozen=True)
class RateCurve:
    """Requests per second at window midpoints (scenario seconds from the day's start),
    linear in between and flat beyond the ends."""

    times: tuple[float, ...]
    rates: tuple[float, ...]

    def at(self, t: float) -> float:
        times, rates = self.times, self.rates
        i = bisect.bisect_right(times, t)
        if i == 0:
            return rates[0]
        if i == len(times):
            return rates[-1]
        t0, t1, r0, r1 = times[i - 1], times[i], rates[i - 1], rates[i]
        return r0 + (r1 - r0) * (t - t0) / (t1 - t0)

    @property
    def peak(self) -> float:
        return max(self.rates)

    def peak_from(self, t: float) -> float:
        """The highest rate of the windows whose midpoint is at or after ``t``."""
        return max(r for at, r in zip(self.times, self.rates, strict=True) if at >= t)

    @property
    def mean(self) -> float:
        return sum(self.rates) / len(self.rates)

    def scaled_to_peak(self, peak_rps: float) -> RateCurve:
        return self.scaled(peak_rps / self.peak)

    def scaled(self, factor: float) -> RateCurve:
        return RateCurve(self.times, tuple(r * factor for r in self.rates))


def read_rate_curve(
    path: str | Path, day: int, hours: float = 24.0, *, lead_hours: float = 0.0
) -> RateCurve:
    """``hours`` from 00:00 of ``day`` of a ServeGen aggregate CSV, preceded by
    ``lead_hours`` of the day before; times count from the start of the lead. ``gap`` rows
    (collection gaps) are skipped, so the curve runs straight across them."""
    start = day * DAY_S - lead_hours * 3600
    end = day * DAY_S + hours * 3600
    times: list[float] = []
    rates: list[float] = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            window = float(row["window_start_s"])
            if not start <= window < end or row.get("gap", "0") == "1":
                continue
            times.append(window - start + float(row["window_s"]) / 2)
            rates.append(float(row["total_rate_rps"]))
    if not times:
        raise ValueError(f"{path}: no rate windows on day {day}")
    return RateCurve(tuple(times), tuple(rates))


def read_lengths(path: str | Path) -> list[tuple[int, int]]:
    """(input_tokens, output_tokens) of every request of a trace in the shared schema."""
    with open(path, newline="") as handle:
        return [(int(r["input_tokens"]), int(r["output_tokens"])) for r in csv.DictReader(handle)]


def curve_arrivals(
    curve: RateCurve,
    lengths: Sequence[tuple[int, int]],
    *,
    duration_s: float,
    time_scale: float,
    seed: int = 0,
) -> list[ReplayRequest]:
    """A non-homogeneous Poisson process following ``curve`` over ``duration_s`` scenario
    seconds (by thinning), on the virtual clock (times divided by ``time_scale``)."""
    rng = random.Random(f"arrivals:{seed}")
    peak, end = curve.peak, duration_s / time_scale
    out: list[ReplayRequest] = []
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            return out
        if rng.random() * peak <= curve.at(t * time_scale):
            prompt, output = lengths[rng.randrange(len(lengths))]
            out.append(ReplayRequest(f"r{len(out)}", t, prompt, output))


def peak_rate(requests: Sequence[ReplayRequest], window_s: float) -> float:
    """The highest arrival rate over aligned windows of ``window_s`` (virtual seconds)."""
    counts: dict[int, int] = {}
    for r in requests:
        key = int(r.arrival_s // window_s)
        counts[key] = counts.get(key, 0) + 1
    return max(counts.values(), default=0) / window_s
