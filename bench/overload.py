"""Admission control under overload, in virtual time: does the pool keep serving at capacity?

Replays the same requests of a trace (default the Azure conversation trace; those the
saturated run sees in ``--window-s`` seconds) through the gateway's routing and admission
code in front of N simulated engines, at several rates, in one run:
1. unloaded (``--unloaded-load`` x the trace's rate): the reference TTFTs;
2. saturated without admission, to measure the pool's capacity (requests/s it completes);
3. ``--overload`` x capacity, without admission and with it; 10% of requests are critical.
Rates are counted in the steady state: completions from ``--warmup-s`` after the first
arrival until the first engine has no queued request left to start (the pool is busy
throughout), so the fill at the start and the drain at the end weigh the same in every run.
Prints one JSON line per run: goodput (requests/s meeting the TTFT SLO) as a share of
capacity, TTFT p99 of all and of critical requests against the unloaded ones, and sheds.

    python bench/overload.py --engine-priority [--overload 3] [--max-running 224]
        [--max-prefill-tokens 1024]

``--max-prefill-tokens`` bounds each worker's prefill backlog (prompt tokens sent to it
that have no first token yet) in the admission run: the gate holds requests while every
worker is over it, and routing skips the workers that are.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.replay.fleet import GatewayRoute
from autoscaler.replay.gated import GatedRequest, RoomRouter, run_gated
from scheduler.admission import AdmissionQueue, SaturationPolicy
from scheduler.config import SchedulerSettings, build_router
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import builtin_registry
from workers.sim.replay import ReplayRequest, VirtualEngine
from workers.sim.trace import read_trace

CRITICAL, STANDARD = 2, 1
inf = float("inf")
DEFAULT_TRACE = Path(__file__).resolve().parents[2] / "shared/data/traces/azure2023_conv.csv"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass(frozen=True)
class Result:
    offered_rps: float
    completed_rps: float
    goodput_rps: float
    ttft_p99_s: float
    critical_ttft_p99_s: float
    shed_share: float
    preemptions: int


def run(
    args: argparse.Namespace, requests: list[ReplayRequest], load: float, admission: bool
) -> Result:
    trace = [
        ReplayRequest(
            r.request_id, r.arrival_s / load, r.prompt_tokens, r.output_tokens,
            trace_block_ids=r.trace_block_ids,
        )
        for r in requests
    ]  # fmt: skip
    gated = [
        GatedRequest(r, CRITICAL if zlib.crc32(r.request_id.encode()) % 10 == 0 else STANDARD)
        for r in trace
    ]
    profile = builtin_registry().get(args.profile)
    config = EngineConfig(
        max_num_seqs=args.max_num_seqs,
        scheduling_policy="priority" if args.engine_priority else "fcfs",
    )
    config = config.model_copy(update={"max_num_batched_tokens": args.max_num_batched_tokens})
    engines = [VirtualEngine(profile, config) for _ in range(args.workers)]
    route = GatewayRoute(RoomRouter(build_router(SchedulerSettings())), args.workers)
    policy = SaturationPolicy(
        queue_threshold=args.queue_threshold,
        max_running=args.max_running,
        priority_headroom=((CRITICAL, args.critical_headroom),),
        slots_only_at_or_above=CRITICAL if args.critical_slots_only else None,
        max_prefill_tokens=args.max_prefill_tokens,
    )
    if not admission:  # a gate that never closes
        policy = SaturationPolicy(queue_threshold=1e12, kv_threshold=1e12)
    queue = AdmissionQueue(
        max_queue=100_000,
        ttft_slo_s=args.shed_wait,
        rate_halflife_s=args.rate_halflife,
    )
    report = run_gated(engines, gated, route, queue, policy, shed_at_or_below=0)
    arrivals = trace[-1].arrival_s - trace[0].arrival_s
    start = trace[0].arrival_s + args.warmup_s
    # The pool is saturated while every engine still has queued work to start.
    end = min(max((r.scheduled_at or 0.0) for r in e.records) for e in engines if e.records)
    # From the arrival at the gateway: a request's engine record starts when it was let in.
    arrived = {r.request_id: r.arrival_s for r in trace}
    ttft = {
        r.request_id: r.first_token_at - arrived[r.request_id]
        for r in report.records
        if r.first_token_at is not None
    }
    steady = [r for r in report.records if start <= r.finished_at <= end]
    critical = [t for rid, t in ttft.items() if report.priority_of.get(rid) == CRITICAL]
    return Result(
        offered_rps=len(gated) / arrivals,
        completed_rps=len(steady) / max(end - start, 1e-9),
        goodput_rps=sum(1 for r in steady if ttft.get(r.request_id, inf) <= args.ttft_slo)
        / max(end - start, 1e-9),
        ttft_p99_s=pct(list(ttft.values()), 0.99),
        critical_ttft_p99_s=pct(critical, 0.99),
        shed_share=len(report.shed) / len(gated),
        preemptions=sum(e.core.num_preemptions_total for e in engines),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--profile", default="llama3-8b-h100")
    parser.add_argument("--ttft-slo", type=float, default=2.0)
    parser.add_argument("--overload", type=float, default=3.0)
    parser.add_argument("--unloaded-load", type=float, default=5.0)
    parser.add_argument("--saturating-load", type=float, default=60.0)
    parser.add_argument("--window-s", type=float, default=60.0, help="seconds of the x60 replay")
    parser.add_argument("--warmup-s", type=float, default=15.0, help="left out of the rates")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="the engines' batch limit")
    parser.add_argument("--max-num-batched-tokens", type=int, default=8192)
    parser.add_argument("--engine-priority", action="store_true", help="priority scheduling")
    parser.add_argument("--max-running", type=int, default=224, help="per worker, gate limit")
    parser.add_argument("--critical-headroom", type=int, default=32, help="beyond max-running")
    parser.add_argument(
        "--critical-slots-only",
        action="store_true",
        help="admit critical requests on free slots alone (with --engine-priority)",
    )
    parser.add_argument(
        "--max-prefill-tokens",
        type=int,
        default=None,
        help="per worker, prompt tokens sent without a first token back that fill it",
    )
    parser.add_argument("--queue-threshold", type=float, default=1.0)
    parser.add_argument("--shed-wait", type=float, default=1.0, help="predicted wait that sheds")
    parser.add_argument("--rate-halflife", type=float, default=10.0)
    args = parser.parse_args()
    every = read_trace(args.trace)
    requests = [r for r in every if r.arrival_s < args.window_s * args.saturating_load]
    trace_rps = len(requests) / (requests[-1].arrival_s - requests[0].arrival_s)
    unloaded = run(args, requests, args.unloaded_load, admission=False)
    saturated = run(args, requests, args.saturating_load, admission=False)
    capacity = saturated.completed_rps
    load = args.overload * capacity / trace_rps
    runs = {
        "unloaded": unloaded,
        "saturated": saturated,
        f"{args.overload:g}x-no-admission": run(args, requests, load, admission=False),
        f"{args.overload:g}x-admission": run(args, requests, load, admission=True),
    }
    for name, result in runs.items():
        print(
            json.dumps(
                {
                    "run": name,
                    **{k: round(v, 3) for k, v in vars(result).items()},
                    "goodput_over_capacity": round(result.goodput_rps / capacity, 3),
                    "critical_p99_over_unloaded": round(
                        result.critical_ttft_p99_s / unloaded.critical_ttft_p99_s, 3
                    ),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
