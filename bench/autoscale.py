"""Scaling policies side by side on a day of production load, in virtual time.

A day of the ServeGen rate curve (m-large, day 10 by default; peak/mean 2.7) scaled to a
peak of 160 req/s (12 replicas of Llama-3.1-8B on one H100 each at the SLO), compressed
24x, with lengths from the Azure 2023 conversation trace, replayed through the gateway's
router, simulated engines and each policy, on one spot and one on-demand pool (cluster model
and cited constants: autoscaler/replay/pools.py). Tidegate runs twice: with both pools, and
on on-demand only (spot against on-demand; at the defaults on-demand only misses more, and
docs/replay.md also compares it at a stricter objective, ``--slo-objective 0.999 --runs
tidegate/on-demand``). One table, or with ``--json`` one JSON line per run; ``--plot`` draws
them together.

    python bench/autoscale.py --plot docs/autoscale.png
    python bench/autoscale.py --day 9 --json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.replay.cli import add_scenario_arguments, replay_settings
from autoscaler.replay.pools import PRESETS
from autoscaler.replay.report import ReplayResult, table
from autoscaler.replay.runner import (
    POLICIES,
    PolicyName,
    Workload,
    capacity,
    replay_policy,
)

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "traces"
RUNS = [(name, "spot+on-demand") for name in POLICIES] + [("tidegate", "on-demand")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path, default=DATA / "azure2023_conv.csv")
    parser.add_argument(
        "--rates",
        type=Path,
        default=DATA / "aggregate" / "servegen_language_m-large_rate_10min.csv",
    )
    add_scenario_arguments(parser)
    parser.add_argument(
        "--runs", default=",".join(f"{p}/{pools}" for p, pools in RUNS), help="policy/pools,..."
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    settings = replay_settings(args)
    workload = Workload(settings)
    cap = capacity(settings, workload)
    print(
        f"# {len(workload.requests)} requests, day {args.day}, {args.hours:g} h compressed "
        f"x{args.time_scale:g}; {cap.rps:.2f} req/s and {cap.concurrency:.0f} in flight per "
        f"replica at TTFT <= {settings.ttft_slo_s:g}s, ITL <= {settings.itl_slo_s * 1000:g}ms",
        file=sys.stderr,
        flush=True,
    )
    results: list[ReplayResult] = []
    for run in args.runs.split(","):
        policy, _, pools = run.partition("/")
        if policy not in POLICIES or pools not in PRESETS:
            parser.error(f"unknown run {run!r}")
        name = cast(PolicyName, policy)
        result = replay_policy(name, PRESETS[pools](), settings, workload, cap)
        if pools != "spot+on-demand":
            result = _renamed(result, f"{policy}/{pools}")
        results.append(result)
        if args.json:
            print(result.to_json(), flush=True)
        else:
            print(f"# {result.policy}: {result.cpu_s:.0f} s CPU", file=sys.stderr, flush=True)
    if not args.json:
        print(table(results))
    if args.plot is not None:
        from autoscaler.replay.plot import plot_comparison

        plot_comparison(results, args.plot, settings.ttft_slo_s)


def _renamed(result: ReplayResult, name: str) -> ReplayResult:
    import dataclasses

    return dataclasses.replace(result, policy=name)


if __name__ == "__main__":
    main()
