"""Part (a) of ``sim_fidelity``: calibrate ``cpu-tiny`` on the real CPU vLLM worker, then
compare real and simulated closed-loop runs of a workload the calibration never saw.

Calibration figures use fixed synthetic shapes only: TTFT of one request alone for seven
prompt lengths; the median inter-token gap of 1 to 16 users each sending requests of one
shape back to back (so requests start and finish as in serving) at two context lengths;
and the TTFT of short requests joining 0 to 15 decoding ones.
``workers.sim.calibration.fit_calibration`` turns them into step costs and the API
server's latency.

The comparison workload is 200 requests with lengths from the Azure 2023 conversation
trace (every 96th row, both lengths scaled by 2048 / 8192), run closed-loop at
concurrency 4 and 16 against the real worker and, in virtual time, against the engine
model with the fitted costs, the real worker's engine configuration and KV blocks, and
the fitted API-server latency (``workers.sim.frontend``). Calibration and comparison runs
alternate over three rounds, so the machine's drift affects both alike; each figure and
each real metric is the median over the rounds.
"""

from __future__ import annotations

import asyncio
import csv
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from sim_fidelity_real import (
    Client,
    CpuMeter,
    Guard,
    WorkerConfig,
    WorkerInfo,
    machine,
    raise_priority,
    real_worker,
    worker_info,
)

from workers.sim.calibration import (
    CalibratedWorker,
    Calibration,
    DecodeFigure,
    JoinFigure,
    fit_calibration,
    measured_profile,
)
from workers.sim.engine_config import EngineConfig
from workers.sim.frontend import ClientTiming, FrontendLatency, closed_loop_timings
from workers.sim.profiles import (
    CPU_KV_CACHE_BYTES,
    CPU_TINY_FRONTEND,
    CPU_TINY_KV_BYTES_PER_TOKEN,
    Profile,
    ProfileRegistry,
    builtin_registry,
)

ROOT = Path(__file__).resolve().parent.parent
AZURE_CONV = ROOT.parent / "shared" / "data" / "traces" / "azure2023_conv.csv"
CALIBRATION_FILE = ROOT / "bench" / "data" / "cpu_tiny_calibration.json"
OUT = ROOT / ".run" / "sim-fidelity"

TTFT_LENGTHS = (16, 128, 256, 512, 1024, 1536, 2000)
# Decode under turnover: ``batch`` users, each sending TURNOVER_REQUESTS requests of one
# (prompt, output) shape back to back, started a little apart so that requests end and
# begin at different steps, as in serving.
DECODE_RUNS = (
    *((b, 256, 64) for b in (1, 2, 4, 8, 12, 16)),
    *((b, 1024, 128) for b in (4, 16)),
)
TURNOVER_REQUESTS = 3
JOIN_RUNNING = (0, 4, 8, 15)
JOIN_PROMPT, JOIN_COUNT, JOIN_SPACING_S = 16, 8, 0.04
JOIN_BACKGROUND_PROMPT, JOIN_BACKGROUND_OUTPUT = 256, 400

WORKLOAD_REQUESTS = 200
CONCURRENCIES = (4, 16)
ROUNDS = 3  # calibration and comparison runs alternate, so drift affects both alike


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- calibration -------------------------------------------------------------------------


async def warm_up(client: Client, max_num_seqs: int, seconds: float = 12.0) -> None:
    """The first seconds of load on CPU run slow (allocations, kernel choice, the
    client's own code paths): run a mixed load for ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        await client.together([(256, 64)] * max_num_seqs)
        for n in TTFT_LENGTHS:
            await client.complete(n, 1)


async def _turnover_itl(client: Client, batch: int, prompt: int, output: int) -> float:
    """Median inter-token gap of ``batch`` users sending requests back to back."""
    spacing = output * 0.003 / batch  # about one request starting every output/batch steps

    async def user(index: int) -> list[ClientTiming]:
        await asyncio.sleep(index * spacing)
        return [await client.complete(prompt, output) for _ in range(TURNOVER_REQUESTS)]

    runs = await asyncio.gather(*(user(i) for i in range(batch)))
    return median([g for timings in runs for t in timings for g in t.gaps()])


async def _join(client: Client, running: int) -> tuple[list[float], float]:
    """TTFTs of short requests sent one after another while ``running`` requests decode,
    and those requests' mean context meanwhile."""
    shape = (JOIN_BACKGROUND_PROMPT, JOIN_BACKGROUND_OUTPUT)
    background = [asyncio.create_task(client.complete(*shape)) for _ in range(running)]
    await asyncio.sleep(0.15 if running else 0.0)
    joins = []
    for _ in range(JOIN_COUNT):
        joins.append(await client.complete(JOIN_PROMPT, 1))
        await asyncio.sleep(JOIN_SPACING_S)
    decoding = await asyncio.gather(*background)
    middle = (joins[0].sent + joins[-1].token_times[-1]) / 2
    generated = [sum(1 for t in d.token_times if t < middle) for d in decoding]
    context = JOIN_BACKGROUND_PROMPT + (median(generated) if generated else 0.0)
    return [j.ttft for j in joins], context


@dataclass
class _Figures:
    ttft: dict[int, list[float]] = field(default_factory=dict)
    decode: dict[tuple[int, int, int], list[float]] = field(default_factory=dict)
    join: dict[int, list[float]] = field(default_factory=dict)
    join_context: dict[int, list[float]] = field(default_factory=dict)

    def calibration(self, guard: Guard) -> Calibration:
        return Calibration(
            ttft_s={n: median(v) for n, v in self.ttft.items()},
            decode=[
                DecodeFigure(batch=b, context_tokens=p + o / 2, itl_s=median(v))
                for (b, p, o), v in sorted(self.decode.items())
            ],
            join=[
                JoinFigure(
                    running=r,
                    running_context_tokens=median(self.join_context[r]) if r else 0.0,
                    prompt_tokens=JOIN_PROMPT,
                    ttft_s=median(v),
                )
                for r, v in sorted(self.join.items())
            ],
            notes={
                "timing": "client-side, time.perf_counter, streamed /v1/completions",
                "rounds": ROUNDS,
                "decode_runs": "batch users x 3 requests back to back, staggered",
                "others_cpu_share_max": round(guard.worst, 3),
                "repeated_for_other_load": guard.repeated,
            },
        )


async def measure_and_compare(
    client: Client, guard: Guard, max_num_seqs: int, shapes: Sequence[tuple[int, int]]
) -> tuple[Calibration, dict[int, list[LoadResult]]]:
    """``ROUNDS`` rounds, each of every calibration figure then the comparison workload
    at every concurrency; figures are medians over the rounds."""

    async def ttft(n: int) -> float:
        return (await client.complete(n, 1)).ttft

    await warm_up(client, max_num_seqs)
    figures = _Figures()
    real: dict[int, list[LoadResult]] = {c: [] for c in CONCURRENCIES}
    for _ in range(ROUNDS):
        for _ in range(2):
            for n in TTFT_LENGTHS:
                figures.ttft.setdefault(n, []).append(await guard.run(partial(ttft, n)))
        for b, p, o in DECODE_RUNS:
            gap = await guard.run(partial(_turnover_itl, client, b, p, o))
            figures.decode.setdefault((b, p, o), []).append(gap)
        for r in JOIN_RUNNING:
            ttfts, context = await guard.run(partial(_join, client, r))
            figures.join.setdefault(r, []).extend(ttfts)
            figures.join_context.setdefault(r, []).append(context)
        for concurrency in CONCURRENCIES:
            run = await guard.run(partial(client.closed_loop, shapes, concurrency))
            real[concurrency].append(LoadResult.of(*run))
    return figures.calibration(guard), real


# -- the comparison ----------------------------------------------------------------------


def azure_workload(
    count: int = WORKLOAD_REQUESTS, *, max_model_len: int = 2048, path: Path = AZURE_CONV
) -> list[tuple[int, int]]:
    """(prompt, output) lengths of ``count`` requests spread evenly over the trace, both
    scaled by ``max_model_len / 8192`` (the trace's model served 8k contexts) and the
    prompt cut so that prompt + output fits ``max_model_len``."""
    with path.open(newline="") as handle:
        rows = [(int(r["input_tokens"]), int(r["output_tokens"])) for r in csv.DictReader(handle)]
    scale = max_model_len / 8192
    pairs = []
    for prompt, output in rows[:: len(rows) // count][:count]:
        out = max(1, round(output * scale))
        pairs.append((max(1, min(round(prompt * scale), max_model_len - out)), out))
    return pairs


@dataclass(frozen=True)
class LoadResult:
    """What one closed-loop run measured, in the units the comparison prints."""

    output_throughput_tok_s: float
    ttft_p50_ms: float
    ttft_p90_ms: float
    itl_p50_ms: float

    @classmethod
    def of(cls, timings: Sequence[ClientTiming], start: float) -> LoadResult:
        end = max(t.token_times[-1] for t in timings)
        ttfts = [t.ttft for t in timings]
        gaps = [g for t in timings for g in t.gaps()]
        return cls(
            output_throughput_tok_s=sum(len(t.token_times) for t in timings) / (end - start),
            ttft_p50_ms=1000 * percentile(ttfts, 0.5),
            ttft_p90_ms=1000 * percentile(ttfts, 0.9),
            itl_p50_ms=1000 * percentile(gaps, 0.5),
        )


METRICS = ("output_throughput_tok_s", "ttft_p50_ms", "ttft_p90_ms", "itl_p50_ms")


def sim_engine_config(config: WorkerConfig, info: WorkerInfo) -> EngineConfig:
    """The simulator's engine configured like the real worker, KV blocks included."""
    return EngineConfig(
        max_num_seqs=config.max_num_seqs,
        max_num_batched_tokens=config.max_num_batched_tokens,
        block_size=info.block_size,
        num_gpu_blocks=info.num_blocks,
        enable_prefix_caching=info.enable_prefix_caching,
        max_model_len=config.max_model_len,
    )


def run_sim(
    profile: Profile,
    engine: EngineConfig,
    frontend: FrontendLatency,
    shapes: Sequence[tuple[int, int]],
    concurrency: int,
) -> LoadResult:
    timings = closed_loop_timings(
        shapes,
        concurrency,
        config=engine,
        num_blocks=profile.num_blocks(engine),
        max_model_len=profile.max_len(engine),
        step_time=profile.step_time,
        frontend=frontend,
    )
    return LoadResult.of(timings, 0.0)


def comparison_lines(
    real: dict[int, list[LoadResult]], sim: dict[int, LoadResult]
) -> list[dict[str, Any]]:
    lines = []
    for concurrency, runs in real.items():
        for metric in METRICS:
            values = [getattr(r, metric) for r in runs]
            measured, predicted = median(values), getattr(sim[concurrency], metric)
            lines.append(
                {
                    "metric": metric,
                    "concurrency": concurrency,
                    "real": round(measured, 2),
                    "sim": round(predicted, 2),
                    "error_pct": round(100 * (predicted - measured) / measured, 1),
                    "real_runs": [round(v, 2) for v in values],
                }
            )
    return lines


def fitted_line(fitted: CalibratedWorker) -> dict[str, Any]:
    return {
        "part": "a",
        "profile": "cpu-tiny",
        **fitted.costs.model_dump(),
        "frontend_base_s": fitted.frontend.base_s,
        "frontend_per_running_s": fitted.frontend.per_running_s,
    }


# -- the whole of part (a) ---------------------------------------------------------------


def part_a(
    saved: Path | None, save_calibration: bool, write_profile: Path | None
) -> list[dict[str, Any]]:
    """Calibrate ``cpu-tiny`` on a real CPU vLLM worker (started and stopped here) and
    compare it with the simulator; or, given a ``saved`` calibration, only fit that."""
    if saved is not None:
        fitted = fit_calibration(Calibration.model_validate_json(saved.read_text()))
        _write_profile(write_profile, fitted)
        return [fitted_line(fitted)]
    started = time.monotonic()
    config = WorkerConfig()
    niceness = raise_priority()
    with real_worker(config, OUT / "worker.log") as worker:
        info = worker_info(worker.url)
        calibration, real = asyncio.run(_measure_and_run(worker.process.pid, config, info))
    calibration = calibration.model_copy(
        update={
            "machine": machine(),
            "engine": {**asdict(config), **asdict(info), "url": None},
            "notes": {**calibration.notes, "niceness": niceness},
        }
    )
    fitted = fit_calibration(calibration)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cpu_tiny_calibration.json").write_text(calibration.model_dump_json(indent=1))
    if save_calibration:
        CALIBRATION_FILE.parent.mkdir(parents=True, exist_ok=True)
        CALIBRATION_FILE.write_text(calibration.model_dump_json(indent=1) + "\n")
    _write_profile(write_profile, fitted)
    engine = sim_engine_config(config, info)
    shapes = azure_workload(max_model_len=config.max_model_len)
    profile = ProfileRegistry([measured_profile(fitted.costs, **_CPU_TINY_SHAPE)]).get("cpu-tiny")
    builtin = builtin_registry().get("cpu-tiny")
    sim = {c: run_sim(profile, engine, fitted.frontend, shapes, c) for c in real}
    sim_builtin = {c: run_sim(builtin, engine, CPU_TINY_FRONTEND, shapes, c) for c in real}
    lines = comparison_lines(real, sim)
    for line in lines:
        builtin_value = getattr(sim_builtin[line["concurrency"]], line["metric"])
        line["sim_builtin_profile"] = round(builtin_value, 2)
    summary = {
        "part": "a",
        "duration_s": round(time.monotonic() - started),
        "others_cpu_share_max": calibration.notes.get("others_cpu_share_max"),
        "repeated_for_other_load": calibration.notes.get("repeated_for_other_load"),
        "niceness": niceness,
    }
    (OUT / "part_a.json").write_text(json.dumps([fitted_line(fitted), *lines, summary], indent=1))
    return [fitted_line(fitted), *lines, summary]


_CPU_TINY_SHAPE: dict[str, Any] = {
    "kv_bytes_per_token": CPU_TINY_KV_BYTES_PER_TOKEN,
    "kv_cache_bytes": CPU_KV_CACHE_BYTES,
    "max_model_len": 2048,
}


async def _measure_and_run(
    worker_pid: int, config: WorkerConfig, info: WorkerInfo
) -> tuple[Calibration, dict[int, list[LoadResult]]]:
    client = Client(info.url, info.vocab_size, seed=0)
    try:
        shapes = azure_workload(max_model_len=config.max_model_len)
        guard = Guard(CpuMeter(worker_pid))
        return await measure_and_compare(client, guard, config.max_num_seqs, shapes)
    finally:
        await client.aclose()


def _write_profile(path: Path | None, fitted: CalibratedWorker) -> None:
    if path is not None:
        spec = measured_profile(fitted.costs, **_CPU_TINY_SHAPE)
        path.write_text(yaml.safe_dump({"profiles": [spec.model_dump()]}))
