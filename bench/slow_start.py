"""A replica joining a busy fleet, with and without the gateway's slow start, in virtual time.

N simulated engines serve more than they can (a scale-up is due); one more replica becomes
ready at ``--join-s``. Requests (lengths from a trace, default the Azure conversation
trace; Poisson arrivals at ``--rate`` requests/s) go through the gateway's default routing,
the what-if loop and the cluster model, once per slow-start window in ``--windows`` and
per seed, all in one run. Prints one JSON line per window: requests and TTFT/ITL misses
among those arriving in the ``--after-s`` seconds after the join, and over the whole run,
summed over seeds; then each window's misses after the join as a share of those without
slow start.

    python bench/slow_start.py [--replicas 4] [--rate 64] [--windows 0,5,10,30] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.replay.cluster import ClusterModel, PoolStatus
from autoscaler.replay.elastic import ElasticRoute
from autoscaler.replay.market import draw_market
from autoscaler.replay.policies import ClusterView
from autoscaler.replay.pools import PoolSpec
from autoscaler.replay.whatif import run_whatif
from scheduler.config import SchedulerSettings, build_router
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import builtin_registry
from workers.sim.replay import ReplayRequest, VirtualEngine
from workers.sim.trace import read_trace

DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "shared/data/traces/azure2023_conv.csv"
PROVISIONING_S = 3.0


@dataclass
class JoinAt:
    """Runs ``before`` replicas, asks for one more at ``at`` (scenario seconds)."""

    before: int
    at: float
    name: str = "join"
    interval_s: float = 1.0

    def initial(self, pools: Sequence[PoolStatus], replicas: int) -> dict[str, int]:
        return {"pool": self.before}

    def decide(self, view: ClusterView) -> dict[str, int]:
        return {"pool": self.before + (view.at >= self.at)}


def requests(trace: Path, rate: float, horizon_s: float, seed: int) -> list[ReplayRequest]:
    lengths = [(r.prompt_tokens, r.output_tokens) for r in read_trace(trace)]
    rng = random.Random(seed)
    out, t = [], rng.expovariate(rate)
    while t < horizon_s:
        prompt, output = rng.choice(lengths)
        out.append(ReplayRequest(f"r{len(out)}", t, prompt, output))
        t += rng.expovariate(rate)
    return out


def run(args: argparse.Namespace, window_s: float, seed: int) -> tuple[int, int, int, int]:
    """(requests after the join, their misses, requests, misses) for one window and seed."""
    pool = PoolSpec(
        name="pool",
        capacity_type="on-demand",
        price_per_hour=1.0,
        node_launch_s=PROVISIONING_S,
        image_pull_s=0.0,
        model_load_s=0.0,
    )
    horizon = args.join_s + PROVISIONING_S + args.after_s + 30.0
    cluster = ClusterModel([pool], draw_market([pool], horizon), seed=seed)
    route = ElasticRoute(build_router(SchedulerSettings()), seed=seed, slow_start_s=window_s)
    profile = builtin_registry().get(args.profile)
    outcome = run_whatif(
        requests(args.trace, args.rate, horizon, seed),
        JoinAt(args.replicas, args.join_s),
        cluster,
        route,
        lambda: VirtualEngine(profile, EngineConfig()),
        initial_replicas=args.replicas,
        time_scale=1.0,
        horizon_s=horizon,
    )
    ready = args.join_s + PROVISIONING_S
    every = [
        (o.arrival_s, o.ttft_s > args.ttft_slo or o.itl_s > args.itl_slo) for o in outcome.outcomes
    ]
    late = [missed for at, missed in every if ready <= at < ready + args.after_s]
    return len(late), sum(late), len(every), sum(missed for _, missed in every)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    p.add_argument("--profile", default="llama3-8b-h100")
    p.add_argument("--replicas", type=int, default=4, help="before the join")
    p.add_argument("--rate", type=float, default=64.0, help="requests/s")
    p.add_argument("--join-s", type=float, default=30.0, help="when one more is asked for")
    p.add_argument("--after-s", type=float, default=10.0, help="the window after it joins")
    p.add_argument("--windows", default="0,5,10,30", help="slow-start windows, seconds")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--ttft-slo", type=float, default=1.0)
    p.add_argument("--itl-slo", type=float, default=0.05)
    args = p.parse_args(argv)
    windows = [float(w) for w in args.windows.split(",")]
    after: dict[float, int] = {}
    for window in windows:
        totals = [0, 0, 0, 0]
        for seed in range(args.seeds):
            for i, value in enumerate(run(args, window, seed)):
                totals[i] += value
        after[window] = totals[1]
        print(
            json.dumps(
                {
                    "slow_start_s": window,
                    "after_join": totals[0],
                    "after_join_missed": totals[1],
                    "requests": totals[2],
                    "missed": totals[3],
                }
            )
        )
    base = after.get(0.0)
    if base:
        ratios = ", ".join(f"{w:g} s: {after[w] / base:.2f}" for w in windows if w)
        print(f"misses after the join, against no slow start: {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
