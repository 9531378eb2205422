"""What the gateway adds: the same load sent straight to two workers and through the gateway.

Two simulated workers (zero delay) and this load generator share core 0; the gateway runs
alone on core 1. For each case (non-stream, and 32-token streams; concurrency 1, 16, 64)
each round sends the load directly (round-robin over the workers) and then through the
gateway, back to back. Prints one JSON line per case: latency p50/p99 direct and through the
gateway, the added p50/p99, and the gateway's CPU milliseconds per request (its user+system
time over the requests it served: steadier than latency on a shared machine). Medians over
rounds.

    python bench/overhead.py [--rounds 3] [--requests 2000] [--concurrency 1,16,64]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tidegate.localproc import (
    LocalWorker,
    free_port,
    start_sim_worker,
    stop_all,
    wait_healthy,
)

MODEL = "bench-model"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def pin(pid: int, core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {core})


@dataclass(frozen=True)
class Case:
    stream: bool
    concurrency: int

    @property
    def name(self) -> str:
        return "stream-32" if self.stream else "non-stream"

    def body(self) -> bytes:
        payload: dict[str, object] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Say something " * 8}],
            "max_tokens": 32 if self.stream else 16,
            "ignore_eos": True,
        }
        if self.stream:
            payload["stream"] = True
        return json.dumps(payload).encode()


async def drive(urls: Sequence[str], case: Case, n: int) -> list[float]:
    """Send ``n`` requests at the case's concurrency; return each one's latency (s)."""
    body = case.body()
    targets = itertools.cycle(urls)
    latencies: list[float] = []
    remaining = iter(range(n))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def user() -> None:
            for _ in remaining:
                url = next(targets) + "/v1/chat/completions"
                start = time.perf_counter()
                async with session.post(
                    url, data=body, headers={"content-type": "application/json"}
                ) as resp:
                    async for _chunk in resp.content.iter_any():
                        pass
                    if resp.status != 200:
                        raise RuntimeError(f"{url} answered {resp.status}")
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(user() for _ in range(case.concurrency)))
    return latencies


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="per case and target")
    parser.add_argument("--concurrency", default="1,16,64")
    args = parser.parse_args()
    import uvloop

    pin(0, 0)
    workers = [start_sim_worker(MODEL, args=["--max-num-seqs", "1024"]) for _ in range(2)]
    gateway = None
    try:
        wait_healthy(workers)
        for w in workers:
            pin(w.process.pid, 0)
        port = free_port()
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidegate",
                "gateway",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--workers",
                ",".join(w.url for w in workers),
            ]
        )
        pin(gateway.pid, 1)
        gateway_url = f"http://127.0.0.1:{port}"
        wait_healthy([LocalWorker(gateway_url, gateway)], 30, path="/readyz")
    except Exception:
        stop_all(workers)
        raise
    try:
        cases = [
            Case(stream, int(c)) for stream in (False, True) for c in args.concurrency.split(",")
        ]
        results: dict[Case, dict[str, list[float]]] = {c: {} for c in cases}
        for _ in range(args.rounds):
            for case in cases:
                n = args.requests if case.concurrency > 1 else max(200, args.requests // 5)
                uvloop.run(drive([gateway_url], case, 100))  # warm-up
                direct = uvloop.run(drive([w.url for w in workers], case, n))
                cpu0 = cpu_seconds(gateway.pid)
                proxied = uvloop.run(drive([gateway_url], case, n))
                cpu_ms = (cpu_seconds(gateway.pid) - cpu0) * 1000 / n
                r = results[case]
                for key, value in (
                    ("direct_p50", pct(direct, 0.5)),
                    ("direct_p99", pct(direct, 0.99)),
                    ("gateway_p50", pct(proxied, 0.5)),
                    ("gateway_p99", pct(proxied, 0.99)),
                    ("cpu_ms", cpu_ms),
                ):
                    r.setdefault(key, []).append(value)
        for case in cases:
            med = {k: statistics.median(v) for k, v in results[case].items()}
            print(
                json.dumps(
                    {
                        "case": case.name,
                        "concurrency": case.concurrency,
                        "rounds": args.rounds,
                        "direct_p50_ms": round(med["direct_p50"] * 1e3, 3),
                        "gateway_p50_ms": round(med["gateway_p50"] * 1e3, 3),
                        "added_p50_ms": round((med["gateway_p50"] - med["direct_p50"]) * 1e3, 3),
                        "added_p99_ms": round((med["gateway_p99"] - med["direct_p99"]) * 1e3, 3),
                        "gateway_over_direct_p50": round(med["gateway_p50"] / med["direct_p50"], 3),
                        "gateway_cpu_ms_per_request": round(med["cpu_ms"], 3),
                    }
                ),
                flush=True,
            )
    finally:
        gateway.terminate()
        gateway.wait()
        stop_all(workers)


if __name__ == "__main__":
    main()
