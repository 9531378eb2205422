"""A one-page PNG of a run from Locust's stats history CSV (``--csv PREFIX`` writes
``PREFIX_stats_history.csv``; the locustfile turns on per-row history).

Four panels over time: TTFT and ITL percentiles (over Locust's sliding ~10 s window),
throughput (requests/s and output tokens/s from the server's usage) and errors per second.

    python -m loadtests.report .run/loadtest/run_stats_history.csv -o .run/loadtest/run_report.png
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from loadtests import names

PERCENTILE_COLUMNS = ("50%", "95%", "99%")


@dataclass
class Series:
    """Per-second values of one measurement, keyed by seconds since the run started."""

    percentiles: dict[str, dict[float, float]] = field(default_factory=dict)


@dataclass
class History:
    ttft: Series = field(default_factory=Series)
    itl: Series = field(default_factory=Series)
    requests_per_s: dict[float, float] = field(default_factory=dict)
    failures_per_s: dict[float, float] = field(default_factory=dict)
    tokens_per_s: dict[float, float] = field(default_factory=dict)
    users: dict[float, float] = field(default_factory=dict)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "N/A") else None
    except ValueError:
        return None


def parse_history(rows: Iterable[dict[str, str]]) -> History:
    """Collect what the report plots. Rates are per interval, from the growth of each
    request row's running totals (Locust's own Requests/s is a lagging 10 s average that
    freezes when load stops): requests, failures, and output tokens (count x average
    size, which is completion tokens), summed across request rows."""
    history = History()
    start: float | None = None
    totals: dict[str, dict[float, tuple[float, float, float]]] = defaultdict(dict)
    for row in rows:
        stamp = _number(row.get("Timestamp"))
        if stamp is None:
            continue
        start = stamp if start is None else min(start, stamp)
        kind, name = row.get("Type", ""), row.get("Name", "")
        if name == "Aggregated":
            history.users[stamp] = _number(row.get("User Count")) or 0.0
            continue
        series = {names.TTFT: history.ttft, names.ITL: history.itl}.get(kind)
        if series is not None:
            for column in PERCENTILE_COLUMNS:
                value = _number(row.get(column))
                points = series.percentiles.setdefault(column, {})
                if value is not None and (value > 0 or points):  # no leading "0": no data yet
                    points[stamp] = value
        elif kind == names.REQUEST:
            count = _number(row.get("Total Request Count")) or 0.0
            failed = _number(row.get("Total Failure Count")) or 0.0
            size = _number(row.get("Total Average Content Size")) or 0.0
            totals[name][stamp] = (count, failed, count * size)
    for running in totals.values():
        for before, after in itertools.pairwise(sorted(running)):
            span = after - before
            rates = [(b - a) / span for a, b in zip(running[before], running[after], strict=True)]
            for target, rate in zip(
                (history.requests_per_s, history.failures_per_s, history.tokens_per_s),
                rates,
                strict=True,
            ):
                target[after] = target.get(after, 0.0) + rate
    return _rebased(history, start or 0.0)


def _rebased(history: History, start: float) -> History:
    def shift(points: dict[float, float]) -> dict[float, float]:
        return {t - start: v for t, v in sorted(points.items())}

    out = History(
        requests_per_s=shift(history.requests_per_s),
        failures_per_s=shift(history.failures_per_s),
        tokens_per_s=shift(history.tokens_per_s),
        users=shift(history.users),
    )
    for source, target in ((history.ttft, out.ttft), (history.itl, out.itl)):
        target.percentiles = {c: shift(p) for c, p in source.percentiles.items()}
    return out


def load_history(path: Path | str) -> History:
    with Path(path).open(newline="") as handle:
        return parse_history(csv.DictReader(handle))


def plot_history(history: History, out: Path | str, title: str = "Tidegate load test") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    for ax, series, label in ((axes[0], history.ttft, "TTFT"), (axes[1], history.itl, "ITL")):
        for column in PERCENTILE_COLUMNS:
            points = series.percentiles.get(column, {})
            if points:
                ax.plot(list(points), list(points.values()), label=f"p{column.rstrip('%')}")
        ax.set_ylabel(f"{label} (ms)")
        ax.set_title(f"{label} percentiles (sliding ~10 s window)", fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    ax.plot(
        list(history.requests_per_s),
        list(history.requests_per_s.values()),
        color="tab:blue",
        label="requests/s",
    )
    ax.set_ylabel("completed requests/s", color="tab:blue")
    ax.set_title("Throughput", fontsize=10)
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(
        list(history.tokens_per_s),
        list(history.tokens_per_s.values()),
        color="tab:green",
        label="output tokens/s",
    )
    twin.set_ylabel("output tokens/s", color="tab:green")
    ax = axes[3]
    ax.plot(
        list(history.failures_per_s),
        list(history.failures_per_s.values()),
        color="tab:red",
        label="failures/s",
    )
    ax.set_ylabel("failures/s", color="tab:red")
    ax.set_ylim(bottom=0)
    ax.set_title("Errors and users", fontsize=10)
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(
        list(history.users),
        list(history.users.values()),
        color="tab:gray",
        linestyle="--",
        label="users",
    )
    twin.set_ylabel("users", color="tab:gray")
    axes[-1].set_xlabel("seconds since start")
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("history_csv", type=Path, help="PREFIX_stats_history.csv from Locust")
    parser.add_argument("-o", "--output", type=Path, help="PNG path (default PREFIX_report.png)")
    parser.add_argument("--title", default="Tidegate load test")
    args = parser.parse_args(argv)
    out = args.output or default_png(args.history_csv)
    plot_history(load_history(args.history_csv), out, args.title)
    print(out)
    return 0


def default_png(history_csv: Path) -> Path:
    stem = history_csv.name.removesuffix("_stats_history.csv")
    return history_csv.with_name(f"{stem}_report.png")


if __name__ == "__main__":
    sys.exit(main())
