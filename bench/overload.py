"""Admission control under overload, in virtual time: does the pool keep serving at capacity?

Replays a trace (default the Azure conversation trace) through the gateway's routing and
admission code in front of N simulated engines, three ways, in one run:
1. unloaded (``--unloaded-load``): the reference TTFT;
2. saturated without admission, to measure the pool's capacity (requests/s it completes);
3. ``--overload`` x capacity, without admission and with it; 10% of requests are critical.
Prints one JSON line per run: goodput (requests/s meeting the TTFT SLO) as a share of
capacity, TTFT p99 of all and of critical requests against the unloaded p99, and sheds.

    python bench/overload.py [--overload 3] [--workers 8] [--ttft-slo 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.replay.fleet import GatewayRoute
from autoscaler.replay.gated import GatedRequest, run_gated
from scheduler.admission import AdmissionQueue, SaturationPolicy
from scheduler.config import SchedulerSettings, build_router
from workers.sim.engine import RequestRecord
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import builtin_registry
from workers.sim.replay import ReplayRequest, VirtualEngine
from workers.sim.trace import read_trace

CRITICAL, STANDARD = 2, 1
DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "shared/data/traces/azure2023_conv.csv"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(args: argparse.Namespace, load: float, admission: bool) -> dict[str, float]:
    trace = read_trace(args.trace, speedup=load)
    trace = [r for r in trace if r.arrival_s < args.window_s]
    gated = [
        GatedRequest(r, CRITICAL if zlib.crc32(r.request_id.encode()) % 10 == 0 else STANDARD)
        for r in trace
    ]
    profile = builtin_registry().get(args.profile)
    engines = [VirtualEngine(profile, EngineConfig()) for _ in range(args.workers)]
    route = GatewayRoute(build_router(SchedulerSettings()), args.workers)
    policy = SaturationPolicy(queue_threshold=args.queue_threshold, max_running=args.max_running)
    if not admission:  # a gate that never closes
        policy = SaturationPolicy(queue_threshold=1e12, kv_threshold=1e12)
    queue = AdmissionQueue(max_queue=100_000, ttft_slo_s=args.ttft_slo)
    report = run_gated(engines, gated, route, queue, policy, shed_at_or_below=0)
    return summarize(
        report.records, report.priority_of, len(gated), len(report.shed), trace, args.ttft_slo
    )


def summarize(
    records: list[RequestRecord],
    priority_of: dict[str, int],
    offered: int,
    shed: int,
    trace: list[ReplayRequest],
    slo: float,
) -> dict[str, float]:
    # Rates over the whole run, from the first arrival until the last request finished.
    arrivals = trace[-1].arrival_s - trace[0].arrival_s
    span = max([trace[-1].arrival_s, *(r.finished_at for r in records)]) - trace[0].arrival_s
    ttft = {
        r.request_id: r.first_token_at - r.arrived_at
        for r in records
        if r.first_token_at is not None
    }
    critical = [t for rid, t in ttft.items() if priority_of.get(rid) == CRITICAL]
    return {
        "offered_rps": offered / arrivals,
        "completed_rps": len(records) / span,
        "goodput_rps": sum(1 for t in ttft.values() if t <= slo) / span,
        "ttft_p99_s": pct(list(ttft.values()), 0.99),
        "critical_ttft_p99_s": pct(critical, 0.99),
        "shed": shed,
        "served": len(ttft),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trace",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared/data/traces/azure2023_conv.csv",
    )
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--profile", default="llama3-8b-h100")
    parser.add_argument("--ttft-slo", type=float, default=2.0)
    parser.add_argument("--overload", type=float, default=3.0)
    parser.add_argument("--unloaded-load", type=float, default=5.0)
    parser.add_argument("--saturating-load", type=float, default=60.0)
    parser.add_argument("--queue-threshold", type=float, default=4.0)
    parser.add_argument(
        "--max-running",
        type=int,
        default=256,
        help="requests per worker the gate lets run (the engine max_num_seqs)",
    )
    parser.add_argument("--window-s", type=float, default=120.0, help="replayed seconds")
    args = parser.parse_args()
    unloaded = run(args, args.unloaded_load, admission=False)
    # Capacity: what the pool completes when it never runs dry.
    saturated = run(args, args.saturating_load, admission=False)
    capacity = saturated["completed_rps"]
    load = args.overload * capacity / (unloaded["offered_rps"] / args.unloaded_load)
    without = run(args, load, admission=False)
    with_gate = run(args, load, admission=True)
    for name, result in (
        ("unloaded", unloaded),
        ("saturated", saturated),
        (f"{args.overload:g}x-no-admission", without),
        (f"{args.overload:g}x-admission", with_gate),
    ):
        print(
            json.dumps(
                {
                    "run": name,
                    **{k: round(v, 3) for k, v in result.items()},
                    "goodput_over_capacity": round(result["goodput_rps"] / capacity, 3),
                    "critical_p99_over_unloaded_p99": round(
                        result["critical_ttft_p99_s"] / unloaded["ttft_p99_s"], 3
                    ),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
