"""Routing policies side by side on a real trace, in virtual time.

Replays a trace in the shared schema through the gateway's routing code (Tidegate's
profiles, and peer policies re-implemented from their published descriptions) in front of
N simulated vLLM engines (calibrated profile, default 8 x Llama-3-8B on H100), and prints
one table per trace, or with ``--json`` one JSON line per policy. ``--decision`` instead
times one routing decision at 8, 64 and 256 endpoints.

    python bench/routing.py --trace ../shared/data/traces/mooncake_synthetic.csv --load 4
    python bench/routing.py --trace ../shared/data/traces/azure2023_conv.csv --load 10 --json
    python bench/routing.py --decision
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.replay.baselines import CacheAware, RoundRobin, gie_default_profile
from autoscaler.replay.fleet import GatewayRoute, RoutesRequests, RoutingResult, summarize
from scheduler.config import SchedulerSettings, build_router
from scheduler.endpoint import Endpoint
from scheduler.framework import Decision, Observer, Router, RoutingContext
from workers.sim.engine import EngineSnapshot, RequestRecord
from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import builtin_registry
from workers.sim.replay import ReplayRequest, VirtualEngine, run_fleet
from workers.sim.trace import read_trace


def _profile(name: str) -> Callable[[], RoutesRequests]:
    return lambda: build_router(SchedulerSettings(default_profile=name))


POLICIES: dict[str, Callable[[], RoutesRequests]] = {
    "round-robin": RoundRobin,
    "least-queue": _profile("least-queue"),
    "gie-default": lambda: build_router(gie_default_profile()),
    "sglang-cache-aware": CacheAware,
    "tidegate-prefix-aware": _profile("prefix-aware"),
    "tidegate-affinity": _profile("affinity"),
}


@dataclasses.dataclass
class Replicas:
    """Several gateway replicas, each with its own router (and its own learned state),
    taking requests in turn as a load balancer in front of them would.

    A real replica counts only the requests it sent itself, so unless ``shared_in_flight``
    each replica's context carries its own in-flight counts (requests and prompt tokens);
    the scraped engine gauges are the same for all (every replica probes every worker).
    With ``estimate_others`` each replica knows how many replicas there are (the
    ``gateway_replicas`` setting) and estimates the others' in-flight from it.

    ``exchange_s`` models replicas that share what their prefix indexes learned without a
    lookup on the request path: every replica's decisions reach the other replicas'
    learning plugins (observers) in batches, at the end of each ``exchange_s`` interval of
    virtual time; until then each replica decides on what it saw itself.
    """

    routers: list[RoutesRequests]
    shared_in_flight: bool = False
    estimate_others: bool = True
    exchange_s: float | None = None
    _turn: int = 0
    _own: list[dict[str, int]] = dataclasses.field(init=False)
    _own_tokens: list[dict[str, int]] = dataclasses.field(init=False)
    _owner: dict[str, tuple[int, str, int]] = dataclasses.field(init=False, default_factory=dict)
    _pending: ReplayRequest | None = dataclasses.field(init=False, default=None)
    _outbox: list[tuple[float, int, RoutingContext, Endpoint]] = dataclasses.field(
        init=False, default_factory=list
    )

    def __post_init__(self) -> None:
        self._own = [{} for _ in self.routers]
        self._own_tokens = [{} for _ in self.routers]

    def route(self, ctx: RoutingContext, rng: random.Random) -> Decision:
        replica = self._turn % len(self.routers)
        self._turn += 1
        self._deliver(ctx.now)
        if not self.shared_in_flight and len(self.routers) > 1:
            own, tokens = self._own[replica], self._own_tokens[replica]
            ctx = dataclasses.replace(
                ctx,
                in_flight={url: own.get(url, 0) for url in ctx.in_flight},
                in_flight_tokens={url: tokens.get(url, 0) for url in ctx.in_flight_tokens},
                gateway_replicas=len(self.routers) if self.estimate_others else 1,
            )
        decision = self.routers[replica].route(ctx, rng)
        if self.exchange_s is not None and len(self.routers) > 1:
            due = (math.floor(ctx.now / self.exchange_s) + 1) * self.exchange_s
            self._outbox.append((due, replica, ctx, decision.endpoint))
        request = self._pending
        if request is not None:
            url = decision.endpoint.url
            self._own[replica][url] = self._own[replica].get(url, 0) + 1
            tokens = self._own_tokens[replica]
            tokens[url] = tokens.get(url, 0) + request.prompt_tokens
            self._owner[request.request_id] = (replica, url, request.prompt_tokens)
        return decision

    def _deliver(self, now: float) -> None:
        """Apply the other replicas' decisions whose exchange batch has arrived, in order."""
        if not self._outbox or self._outbox[0][0] > now:
            return
        arrived = [item for item in self._outbox if item[0] <= now]
        self._outbox = [item for item in self._outbox if item[0] > now]
        for _, origin, ctx, endpoint in arrived:
            for replica, router in enumerate(self.routers):
                if replica != origin:
                    for observer in _observers(router):
                        observer.observe(ctx, endpoint)

    def done(self, request_id: str) -> None:
        owner = self._owner.pop(request_id, None)
        if owner is not None:
            replica, url, prompt = owner
            self._own[replica][url] -= 1
            self._own_tokens[replica][url] -= prompt


def _observers(router: RoutesRequests) -> list[Observer]:
    """The learning plugins of a configured router (profiles share them); none for baselines."""
    if not isinstance(router, Router):
        return []
    unique: dict[int, Observer] = {}
    for profile in router.profiles.values():
        for observer in profile.observers:
            unique.setdefault(id(observer), observer)
    return list(unique.values())


@dataclasses.dataclass
class ReplicatedRoute(GatewayRoute):
    """The fleet's route, telling the replicas which request they route and when it ends."""

    replicas: Replicas | None = None
    engines: Sequence[VirtualEngine] = ()

    def __call__(self, request: ReplayRequest, engines: Sequence[EngineSnapshot]) -> int:
        assert self.replicas is not None
        self.replicas._pending = request
        index = super().__call__(request, engines)
        self.replicas._pending = None
        if not self.engines[index].accepts(request):  # answered 400 at once: not in flight
            self.replicas.done(request.request_id)
        return index

    def finished(self, index: int, records: Sequence[RequestRecord]) -> None:
        super().finished(index, records)
        assert self.replicas is not None
        for record in records:
            self.replicas.done(record.request_id)


def replay(args: argparse.Namespace, policy: str) -> tuple[RoutingResult, float]:
    requests = read_trace(args.trace, limit=args.limit, speedup=args.load)
    profile = builtin_registry().get(args.profile)
    engines = [VirtualEngine(profile, EngineConfig()) for _ in range(args.workers)]
    replicas = Replicas(
        [POLICIES[policy]() for _ in range(args.replicas)],
        shared_in_flight=getattr(args, "shared_in_flight", False),
        estimate_others=not getattr(args, "no_estimate", False),
        exchange_s=getattr(args, "index_exchange", None),
    )
    route = ReplicatedRoute(
        replicas, args.workers, seed=args.seed, replicas=replicas, engines=engines
    )
    started = time.process_time()
    report = run_fleet(engines, requests, route, route.finished)
    return summarize(policy, report, route, args.ttft_slo), time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--profile", default="llama3-8b-h100")
    parser.add_argument("--load", type=float, default=1.0, help="arrival-rate multiplier")
    parser.add_argument("--limit", type=int, help="only the first N requests")
    parser.add_argument("--ttft-slo", type=float, default=2.0, help="seconds, for goodput")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="gateway replicas, each with its own router, taking turns",
    )
    parser.add_argument(
        "--shared-in-flight",
        action="store_true",
        help="let every replica see all in-flight requests (by default each sees its own)",
    )
    parser.add_argument(
        "--no-estimate",
        action="store_true",
        help="replicas do not know how many replicas there are (gateway_replicas 1)",
    )
    parser.add_argument(
        "--index-exchange",
        type=float,
        metavar="S",
        help="replicas exchange what their prefix indexes learned every S virtual seconds",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--decision", action="store_true", help="time one decision instead")
    args = parser.parse_args()
    if args.decision:
        from bench.routing_decision import main as decision_main

        sys.argv = sys.argv[:1]
        decision_main()
        return
    if args.trace is None:
        parser.error("--trace is required (or --decision)")
    results = []
    for policy in args.policies.split(","):
        result, cpu_s = replay(args, policy)
        results.append(result)
        if args.json:
            print(
                json.dumps({**dataclasses.asdict(result), "replay_cpu_s": round(cpu_s, 2)}),
                flush=True,
            )
    if not args.json:
        print(
            f"{args.trace.name}: {args.workers} x {args.profile}, load x{args.load:g}, "
            f"TTFT SLO {args.ttft_slo:g}s"
        )
        header = (
            "policy",
            "TTFT p50",
            "TTFT p99",
            "ITL p99",
            "tok/s",
            "prefix hit",
            "max/mean",
            "goodput/s",
            "SLO met",
        )
        print("".join(f"{h:>12}" if i else f"{h:<20}" for i, h in enumerate(header)))
        for r in results:
            cells = (
                f"{r.ttft_p50_s:.3f}",
                f"{r.ttft_p99_s:.3f}",
                f"{r.itl_p99_s * 1e3:.1f}ms",
                f"{r.throughput_tok_s:.0f}",
                f"{r.prefix_hit_rate:.1%}",
                f"{r.max_mean_load:.2f}",
                f"{r.goodput:.2f}",
                f"{r.slo_attainment:.1%}",
            )
            print(f"{r.policy:<20}" + "".join(f"{c:>12}" for c in cells))


if __name__ == "__main__":
    main()
