"""``tidegate replay``: a what-if of one scaling policy on a trace, in virtual time.

    tidegate replay --trace ../shared/data/traces/azure2023_conv.csv --policy tidegate \\
        --rates ../shared/data/traces/aggregate/servegen_language_m-large_rate_10min.csv \\
        --json --plot tidegate.png

Prints a summary (or with ``--json`` one JSON line); exit status 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from pydantic import ValidationError

from autoscaler.replay.pools import PoolsError, parse_pools
from autoscaler.replay.report import table
from autoscaler.replay.runner import (
    POLICIES,
    PolicyName,
    ReplaySettings,
    Workload,
    capacity,
    replay_policy,
)
from workers.sim.profiles import ProfileError, builtin_registry


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tidegate replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--trace", type=Path, required=True, help="request-level trace (lengths)")
    p.add_argument("--policy", choices=POLICIES, required=True)
    p.add_argument(
        "--pools",
        help="spot+on-demand (default), on-demand, spot, a YAML/JSON file or inline YAML list",
    )
    p.add_argument("--rates", type=Path, help="aggregate rate curve (ServeGen 10-min CSV)")
    add_scenario_arguments(p)
    p.add_argument("--json", action="store_true", help="one JSON line")
    p.add_argument("--plot", type=Path, help="write a PNG of load, replicas and TTFT p95")
    return p


def _default(field: str) -> object:
    """A flag's default is its setting's: one place to change either."""
    return ReplaySettings.model_fields[field].default


def add_scenario_arguments(p: argparse.ArgumentParser) -> None:
    """The scenario's and Tidegate's options (``--trace`` and ``--rates`` are the caller's:
    ``bench/autoscale.py`` gives them defaults); :func:`replay_settings` reads them."""
    p.add_argument(
        "--day",
        type=int,
        default=_default("day"),
        help="day of the rate curve (default %(default)s)",
    )
    p.add_argument("--hours", type=float, default=_default("hours"))
    p.add_argument(
        "--warmup-hours",
        type=float,
        default=_default("warmup_hours"),
        help="with --rates: hours of the day before, replayed first and left out of the results",
    )
    p.add_argument(
        "--peak-rps", type=float, default=_default("peak_rps"), help="rate curve scaled to this"
    )
    p.add_argument(
        "--time-scale", type=float, default=_default("time_scale"), help="scenario s per virtual s"
    )
    p.add_argument(
        "--speedup", type=float, default=_default("speedup"), help="trace replay without --rates"
    )
    p.add_argument("--limit", type=int, help="only the first N requests")
    p.add_argument("--profile", default=_default("profile"))
    p.add_argument("--ttft-slo", type=float, default=_default("ttft_slo_s"), help="seconds")
    p.add_argument("--itl-slo", type=float, default=_default("itl_slo_s"), help="seconds")
    p.add_argument(
        "--slo-objective",
        type=float,
        default=_default("slo_objective"),
        help="share of requests Tidegate aims to keep within both targets",
    )
    p.add_argument("--capacity-rps", type=float, help="per replica (default: calibrated)")
    p.add_argument(
        "--spot-over-provision",
        type=float,
        default=_default("spot_over_provision"),
        help="tidegate: spot replicas planned for spot demand x (1 + this), at least",
    )
    p.add_argument(
        "--spare-window",
        type=float,
        default=_default("spare_window_s"),
        help="tidegate: seconds of arrival rates whose lowest the spot padding is over",
    )
    p.add_argument(
        "--spot-fallback-after",
        type=float,
        default=_default("spot_fallback_after_s"),
        help="tidegate: seconds spot may stay unschedulable before on-demand takes over",
    )
    p.add_argument(
        "--forecast-lead",
        type=float,
        default=_default("forecast_lead_s"),
        help="tidegate: size for the arrival rate this many seconds ahead, from its rising "
        "trend (0: the rate now)",
    )
    p.add_argument(
        "--scale-down-window",
        type=float,
        default=_default("scale_down_window_s"),
        help="tidegate: seconds whose highest recommendation a scale-down goes to",
    )
    p.add_argument(
        "--on-demand-base",
        type=int,
        default=_default("on_demand_base"),
        help="tidegate and skyserve: replicas kept on on-demand whatever spot does",
    )
    p.add_argument(
        "--no-learn",
        action="store_true",
        help="tidegate: keep the capacity per replica at its prior instead of learning it",
    )
    p.add_argument(
        "--slow-start",
        type=float,
        default=_default("slow_start_s"),
        help="the gateway's slow start for a joining replica, seconds as requests run "
        "(0: off), for every policy",
    )
    p.add_argument("--seed", type=int, default=_default("seed"))


def replay_settings(args: argparse.Namespace) -> ReplaySettings:
    """Settings from arguments added by :func:`add_scenario_arguments` (raises
    ``ValidationError`` on bad values)."""
    return ReplaySettings(
        trace=args.trace,
        rates=args.rates,
        day=args.day,
        hours=args.hours,
        warmup_hours=args.warmup_hours,
        peak_rps=args.peak_rps,
        time_scale=args.time_scale,
        speedup=args.speedup,
        limit=args.limit,
        profile=args.profile,
        ttft_slo_s=args.ttft_slo,
        itl_slo_s=args.itl_slo,
        slo_objective=args.slo_objective,
        capacity_rps=args.capacity_rps,
        spot_fallback_after_s=args.spot_fallback_after,
        spot_over_provision=args.spot_over_provision,
        spare_window_s=args.spare_window,
        learn_capacity=not args.no_learn,
        forecast_lead_s=args.forecast_lead,
        scale_down_window_s=args.scale_down_window,
        on_demand_base=args.on_demand_base,
        slow_start_s=args.slow_start,
        seed=args.seed,
    )


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        pools = parse_pools(args.pools)
        settings = replay_settings(args)
        builtin_registry().get(settings.profile)
        workload = Workload(settings)
    except (PoolsError, ProfileError, ValidationError, OSError, ValueError, KeyError) as error:
        print(f"tidegate replay: {error}", file=sys.stderr)
        return 2
    result = replay_policy(
        cast(PolicyName, args.policy), pools, settings, workload, capacity(settings, workload)
    )
    if args.json:
        print(result.to_json())
    else:
        print(
            f"{len(workload.requests)} requests over {result.scenario_hours:g} scenario hours "
            f"(x{result.time_scale:g} compressed), {result.capacity_rps:.2f} req/s per replica"
        )
        print(table([result]))
    if args.plot is not None:
        from autoscaler.replay.plot import plot_run

        plot_run(result, args.plot, settings.ttft_slo_s)
    return 0
