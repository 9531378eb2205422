"""Plots of what-if runs: load, replicas per pool, TTFT p95 over the scenario's hours.

matplotlib (the ``loadtests`` extra) is imported only here and only when a plot is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from autoscaler.replay.report import ReplayResult, quantile

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def series(
    result: ReplayResult, bucket_s: float
) -> tuple[list[float], list[float], list[float | None]]:
    """(bucket start in hours, arrivals per second, TTFT p95 of the bucket's arrivals), by
    arrival time on the scenario clock; lost and abandoned requests count as infinitely
    late."""
    k = result.time_scale
    buckets = int(result.scenario_hours * 3600 // bucket_s) + 1
    counts = [0] * buckets
    ttfts: list[list[float]] = [[] for _ in range(buckets)]
    for o in result.outcomes:
        index = min(buckets - 1, int(o.arrival_s * k // bucket_s))
        counts[index] += 1
        ttfts[index].append(o.ttft_s)
    hours = [i * bucket_s / 3600 for i in range(buckets)]
    rates = [c / (bucket_s / k) for c in counts]
    p95 = [quantile(sorted(t), 0.95) if t else None for t in ttfts]
    return hours, rates, p95


def plot_run(result: ReplayResult, out: Path, ttft_slo_s: float, bucket_s: float = 600) -> None:
    _use_agg()
    import matplotlib.pyplot as plt

    hours, rates, p95 = series(result, bucket_s)
    fig, (load, reps, ttft) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    load.plot(hours, rates, color="black", lw=1)
    load.set_ylabel("arrivals (req/s)")
    load.set_title(
        f"{result.policy}: {result.scenario_hours:g} h, ${result.cost:,.0f}, "
        f"SLO attainment {result.slo_attainment:.2%}"
    )
    at = [s.at / 3600 for s in result.samples]
    for pool in result.pools:
        reps.step(at, [s.ready[pool] for s in result.samples], where="post", label=f"{pool} ready")
        reps.step(
            at,
            [s.desired[pool] for s in result.samples],
            where="post",
            ls=":",
            label=f"{pool} desired",
        )
    reps.set_ylabel("replicas")
    reps.legend(loc="upper right", fontsize=8)
    _ttft_panel(ttft, [(result.policy, hours, p95)], ttft_slo_s)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_comparison(
    results: Sequence[ReplayResult], out: Path, ttft_slo_s: float, bucket_s: float = 600
) -> None:
    """Load once, then total ready replicas (spot shaded for Tidegate) and TTFT p95 for
    every policy."""
    _use_agg()
    import matplotlib.pyplot as plt

    fig, (load, reps, ttft) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    lines = []
    for result in results:
        hours, rates, p95 = series(result, bucket_s)
        if result is results[0]:
            load.plot(hours, rates, color="black", lw=1)
        at = [s.at / 3600 for s in result.samples]
        total = [sum(s.ready.values()) for s in result.samples]
        (line,) = reps.step(at, total, where="post", lw=1.2, label=result.policy)
        spot = [p for p, kind in result.pools.items() if kind == "spot"]
        if result.policy == "tidegate" and spot:
            on_spot = [sum(s.ready[p] for p in spot) for s in result.samples]
            reps.fill_between(
                at,
                on_spot,
                step="post",
                color=line.get_color(),
                alpha=0.2,
                label="tidegate on spot",
            )
        lines.append((result.policy, hours, p95))
    load.set_ylabel("arrivals (req/s)")
    load.set_title("24 h of ServeGen load, compressed; replicas and TTFT p95 per policy")
    reps.set_ylabel("ready replicas")
    reps.legend(loc="upper right", fontsize=8, ncol=3)
    _ttft_panel(ttft, lines, ttft_slo_s)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _ttft_panel(
    ax: Axes, lines: Sequence[tuple[str, list[float], list[float | None]]], slo: float
) -> None:
    for name, hours, p95 in lines:
        points = [(h, min(v, 600.0)) for h, v in zip(hours, p95, strict=True) if v is not None]
        ax.plot([h for h, _ in points], [v for _, v in points], lw=1, label=name)
    ax.axhline(slo, color="red", ls="--", lw=0.8, label="TTFT SLO")
    ax.set_yscale("log")
    ax.set_ylabel("TTFT p95 (s)")
    ax.set_xlabel("scenario hour")
    ax.legend(loc="upper right", fontsize=8, ncol=3)


def _use_agg() -> None:
    import matplotlib

    matplotlib.use("Agg")
