"""CPU time of one routing decision, by profile and pool size.

Builds a pool of N fresh endpoints with random queue depths, KV use and in-flight counts,
and times ``Router.route`` for requests with 8 prefix blocks and a session key (process CPU
time, medians over rounds). Prints one JSON line per (profile, endpoints).

    python bench/routing_decision.py [--decisions 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scheduler.config import SchedulerSettings, build_router
from scheduler.endpoint import Endpoint, EngineStats, PoolSnapshot
from scheduler.framework import RoutingContext
from scheduler.request import RoutingRequest

PROFILES: dict[str, dict[str, Any]] = {
    "least-queue": {},
    "affinity": {},
    "prefix-index": {
        "plugins": {"index": {"type": "prefix-index-scorer"}},
        "profiles": {
            "prefix-index": {
                "filters": ["bounded-load"],
                "scorers": [
                    {"plugin": "index", "weight": 2},
                    {"plugin": "queue"},
                    {"plugin": "kv-cache"},
                ],
            }
        },
    },
}


def pool(n: int, rng: random.Random) -> tuple[PoolSnapshot, dict[str, int]]:
    endpoints = tuple(
        Endpoint(
            url=f"http://10.0.{i // 250}.{i % 250}:8000",
            healthy=True,
            scraped_at=0.0,
            models=frozenset({"m"}),
            stats={
                "m": EngineStats(
                    running=rng.randint(0, 64),
                    waiting=rng.randint(0, 8),
                    kv_cache_usage=rng.random(),
                )
            },
        )
        for i in range(n)
    )
    return PoolSnapshot(endpoints), {e.url: rng.randint(0, 16) for e in endpoints}


def time_profile(name: str, n: int, decisions: int, seed: int) -> float:
    rng = random.Random(seed)
    extra = PROFILES[name]
    settings = SchedulerSettings.model_validate(
        {
            **extra,
            "plugins": {**SchedulerSettings().plugins, **extra.get("plugins", {})},
            "profiles": {**SchedulerSettings().profiles, **extra.get("profiles", {})},
            "default_profile": name,
        }
    )
    router = build_router(settings)
    snapshot, in_flight = pool(n, rng)
    requests = [
        RoutingRequest(
            model="m",
            session=f"s{i % 97}",
            prefix_blocks=tuple(rng.randrange(1 << 32) for _ in range(8)),
        )
        for i in range(256)
    ]
    contexts = [
        RoutingContext(request=r, snapshot=snapshot, in_flight=in_flight, now=1.0, max_age_s=5.0)
        for r in requests
    ]
    start = time.process_time()
    for i in range(decisions):
        router.route(contexts[i & 255], rng)
    return (time.process_time() - start) / decisions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--endpoints", default="8,64,256")
    args = parser.parse_args()
    for n in (int(x) for x in args.endpoints.split(",")):
        for name in PROFILES:
            runs = [time_profile(name, n, args.decisions, seed) for seed in range(args.rounds)]
            print(
                json.dumps(
                    {
                        "profile": name,
                        "endpoints": n,
                        "cpu_us_per_decision": round(statistics.median(runs) * 1e6, 2),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
