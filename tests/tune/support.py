"""A tiny model on made-up GPUs, small enough that a whole sweep replays in a second."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from workers.sim.replay import ReplayRequest
from workers.sim.step_time import HardwareSpec, ModelSpec
from workers.tune.outcome import Measured, Slo
from workers.tune.space import Candidate, EngineGroup
from workers.tune.tuner import TuneSettings

MIB = 1024**2

TINY = ModelSpec(
    name="tiny",
    params=1_000_000,  # 2 MB of BF16 weights
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_kv_heads=2,
    head_dim=16,
    vocab_size=1000,
    max_model_len=4096,
)


def gpu(
    name: str, *, memory_mib: float = 64, bandwidth: float = 1e9, flops: float = 1e11
) -> HardwareSpec:
    return HardwareSpec(
        name=name,
        memory_bytes=memory_mib * MIB,
        hbm_bandwidth=bandwidth,
        peak_flops=flops,
        link_bandwidth=1e9,
        allreduce_latency_s=1e-4,
        mem_efficiency=1.0,
        compute_efficiency=1.0,
        step_overhead_s=1e-3,
        reserved_bytes=1 * MIB,
    )


SLOW = gpu("slow")  # 2 ms to stream the weights
FAST = gpu("fast", bandwidth=4e9, flops=4e11)
CRAMPED = gpu("cramped", memory_mib=2.5)  # the weights and the reserve do not fit


def profile_file(tmp: Path) -> Path:
    path = tmp / "tiny.yaml"
    doc = {
        "models": [TINY.model_dump()],
        "hardware": [h.model_dump() for h in (SLOW, FAST, CRAMPED)],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def poisson_requests(n: int, rate: float, seed: int = 1) -> list[ReplayRequest]:
    rng = random.Random(seed)
    t, out = 0.0, []
    for i in range(n):
        out.append(ReplayRequest(f"r{i}", t, rng.randint(50, 400), rng.randint(5, 60)))
        t += rng.expovariate(rate)
    return out


SLO = Slo(ttft_p95_s=1.0, itl_p95_s=0.05)

# At 80 requests/s (``busy()``) one "slow" engine breaks this SLO with either batch limit
# (TTFT with 4 sequences, ITL with 64); two or three of them meet it.
TIGHT = Slo(ttft_p95_s=0.1, itl_p95_s=0.005)


def busy() -> list[ReplayRequest]:
    return poisson_requests(200, 80.0)


def write_trace(requests: list[ReplayRequest], path: Path) -> Path:
    lines = ["arrival_s,input_tokens,output_tokens"]
    lines += [f"{r.arrival_s:.6f},{r.prompt_tokens},{r.output_tokens}" for r in requests]
    path.write_text("\n".join(lines) + "\n")
    return path


def group(hardware: str = "slow", tp: int = 1, seqs: int = 64, mbt: int = 2048) -> EngineGroup:
    return EngineGroup(hardware, tp, seqs, mbt)


def measured(
    label_or_group: EngineGroup | str = "slow",
    replicas: int = 1,
    *,
    usd: float = 1.0,
    ttft: float = 0.5,
    itl: float = 0.02,
    goodput: int = 1000,
    meets: bool = True,
) -> Measured:
    g = group(label_or_group) if isinstance(label_or_group, str) else label_or_group
    return Measured(
        candidate=Candidate(g, replicas),
        usd_per_hour=usd,
        requests=100,
        ttft_p95_s=ttft,
        itl_p95_s=itl,
        requests_in_slo=100 if meets else 50,
        output_tokens=goodput,
        goodput_tokens=goodput,
        makespan_s=3600.0,
        meets_slo=meets,
    )


PRICES = ("slow=1", "fast=2.5", "cramped=0.5")


def settings(tmp_path: Path, **overrides: object) -> TuneSettings:
    fields: dict[str, object] = dict(
        trace=tmp_path / "unused.csv",
        slo_ttft_p95=TIGHT.ttft_p95_s,
        slo_itl_p95=TIGHT.itl_p95_s,
        model="tiny",
        gpus=("slow", "fast", "cramped"),
        tp=(1, 2),
        max_num_seqs=(4, 64),
        max_num_batched_tokens=(2048,),
        max_replicas=4,
        max_model_len=4096,  # so "cramped" fits at no tp: weights at 1, KV at 2
        price=PRICES,
        profile_file=profile_file(tmp_path),
    )
    fields.update(overrides)
    return TuneSettings.model_validate(fields)
