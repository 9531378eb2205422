"""A day-long request trace from a daily rate curve and a request-level trace's lengths.

The shared traces hold either requests (an hour of Azure conversations, with lengths) or
aggregate rates (14 days of ServeGen request rates per 10-minute window, no lengths).
Tuning for a day needs both: arrivals follow one day of the rate curve, scaled to a chosen
mean rate (a Poisson process whose rate is constant within each window), and each request's
prompt and output lengths are drawn, with replacement, from the request trace. Windows
marked as collection gaps take the rate of the window before.

    python -m workers.tune.daytrace --out .run/day.csv --mean-rps 2 \\
        --curve ../shared/data/traces/aggregate/servegen_language_m-large_rate_10min.csv \\
        --lengths ../shared/data/traces/azure2023_conv.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Window:
    start_s: float  # from the start of the day
    length_s: float
    rate_rps: float


def read_day(path: str | Path, day: int = 0) -> list[Window]:
    """Day ``day`` (0-based) of a ServeGen rate curve, gaps filled from the window before."""
    windows: list[Window] = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            start = float(row["window_start_s"]) - day * DAY_S
            if not 0 <= start < DAY_S:
                continue
            rate = float(row["total_rate_rps"])
            if row.get("gap") == "1":
                rate = windows[-1].rate_rps if windows else 0.0
            windows.append(Window(start, float(row["window_s"]), rate))
    if not windows:
        raise ValueError(f"{path}: no windows on day {day}")
    return windows


def read_lengths(path: str | Path) -> list[tuple[int, int]]:
    with open(path, newline="") as handle:
        return [(int(r["input_tokens"]), int(r["output_tokens"])) for r in csv.DictReader(handle)]


def day_arrivals(
    windows: Sequence[Window],
    lengths: Sequence[tuple[int, int]],
    mean_rps: float,
    rng: random.Random,
) -> list[tuple[float, int, int]]:
    """``(arrival_s, input_tokens, output_tokens)`` rows, sorted, the first at 0.0."""
    if mean_rps <= 0 or not lengths:
        raise ValueError("need a positive mean rate and some lengths")
    span = sum(w.length_s for w in windows)
    curve_mean = sum(w.rate_rps * w.length_s for w in windows) / span
    scale = mean_rps / curve_mean if curve_mean > 0 else 0.0
    origin = windows[0].start_s
    times: list[float] = []
    for window in windows:
        rate = window.rate_rps * scale
        if rate <= 0:
            continue
        t = window.start_s - origin + rng.expovariate(rate)
        end = window.start_s - origin + window.length_s
        while t < end:
            times.append(t)
            t += rng.expovariate(rate)
    first = times[0] if times else 0.0
    return [(t - first, *rng.choice(lengths)) for t in times]


def write_trace(rows: Sequence[tuple[float, int, int]], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arrival_s", "input_tokens", "output_tokens"])
        writer.writerows((f"{t:.3f}", i, o) for t, i, o in rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.tune.daytrace", description=__doc__)
    parser.add_argument("--curve", required=True, help="ServeGen *_rate_10min.csv")
    parser.add_argument("--lengths", required=True, help="request trace to draw lengths from")
    parser.add_argument("--out", required=True)
    parser.add_argument("--day", type=int, default=0)
    parser.add_argument("--mean-rps", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = day_arrivals(
        read_day(args.curve, args.day),
        read_lengths(args.lengths),
        args.mean_rps,
        random.Random(args.seed),
    )
    write_trace(rows, args.out)
    print(
        f"{args.out}: {len(rows):,} requests over {rows[-1][0] / 3600:.1f} h" if rows else "empty"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
