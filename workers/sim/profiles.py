"""Named profiles: which model on which hardware, and so how long steps take and how many
KV blocks fit.

A profile is either ``roofline`` (a ``ModelSpec`` on ``tp`` GPUs of a ``HardwareSpec``) or
``measured`` (``LinearCosts`` fitted to a real worker, plus its KV cache space). The
built-in specs below are immutable data with their sources; ``builtin_registry()`` builds
a fresh ``ProfileRegistry`` from them, and ``ProfileRegistry.with_file`` adds profiles
from a YAML or JSON file (validated, unknown keys rejected), e.g. a calibrated
``cpu-tiny``. Sources and the reasoning behind every efficiency factor are in
docs/simulator.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workers.sim.engine_config import EngineConfig
from workers.sim.frontend import FrontendLatency
from workers.sim.step_time import (
    HardwareSpec,
    LinearCosts,
    LinearStepTime,
    ModelSpec,
    RooflineStepTime,
    StepTimeModel,
)

GIB = 1024**3
MIB = 1024**2

# -- models (config.json of each checkpoint on Hugging Face) ---------------------------

LLAMA_31_8B = ModelSpec(
    name="llama-3.1-8b",
    params=8_030_261_248,
    num_layers=32,
    hidden_size=4096,
    num_attention_heads=32,
    num_kv_heads=8,
    head_dim=128,
    vocab_size=128_256,
    max_model_len=131_072,
    source="meta-llama/Llama-3.1-8B-Instruct config.json and model card (8.03B params, BF16)",
)
LLAMA_31_70B = ModelSpec(
    name="llama-3.1-70b",
    params=70_553_706_496,
    num_layers=80,
    hidden_size=8192,
    num_attention_heads=64,
    num_kv_heads=8,
    head_dim=128,
    vocab_size=128_256,
    max_model_len=131_072,
    source="meta-llama/Llama-3.1-70B-Instruct config.json and model card (70.6B params, BF16)",
)

# -- accelerators (vendor datasheets; efficiencies and overheads: docs/simulator.md) --

H100_80GB = HardwareSpec(
    name="h100-80gb",
    memory_bytes=81_559 * MIB,  # nvidia-smi total for H100 SXM5 80GB
    hbm_bandwidth=3.35e12,  # H100 SXM datasheet: 3.35 TB/s HBM3
    peak_flops=989e12,  # datasheet: 1,979 TFLOPS BF16 with sparsity, half dense
    link_bandwidth=450e9,  # datasheet: NVLink 900 GB/s bidirectional
    allreduce_latency_s=45e-6,  # fitted: vLLM 0.6.0 70B TP4 [sglang]
    mem_efficiency=0.80,  # fitted: [lambda] 10 prompts and [async-pr] (docs/simulator.md)
    compute_efficiency=0.45,
    step_overhead_s=1.2e-3,
    reserved_bytes=3 * GIB,
    source="NVIDIA H100 Tensor Core GPU datasheet (SXM5)",
)
A100_80GB = HardwareSpec(
    name="a100-80gb",
    memory_bytes=81_920 * MIB,  # nvidia-smi total for A100 SXM4 80GB
    hbm_bandwidth=2.039e12,  # A100 datasheet: 2,039 GB/s HBM2e (80GB SXM)
    peak_flops=312e12,  # datasheet: 312 TFLOPS BF16 dense
    link_bandwidth=300e9,  # datasheet: NVLink 600 GB/s bidirectional
    allreduce_latency_s=45e-6,  # not fitted (no TP data): H100's value
    mem_efficiency=0.70,  # fitted: vLLM 0.6.0 on 1x A100 80G [sglang]
    compute_efficiency=0.45,
    step_overhead_s=2.0e-3,
    reserved_bytes=3 * GIB,
    source="NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB)",
)
A100_40GB = A100_80GB.model_copy(
    update={
        "name": "a100-40gb",
        "memory_bytes": 40_960 * MIB,
        "hbm_bandwidth": 1.555e12,  # A100 datasheet: 1,555 GB/s HBM2 (40GB SXM)
        # fitted to vLLM 0.23 (V1) [a100-sweep]: a newer engine reaches more of the peaks
        "mem_efficiency": 0.85,
        "compute_efficiency": 0.70,
        "step_overhead_s": 1.2e-3,
        "source": "NVIDIA A100 Tensor Core GPU datasheet (SXM4 40GB)",
    }
)

# The tiny CPU model (hidden 128, 2 layers, 2 KV heads of 64, BF16 KV cache) on the real
# 2-core CPU vLLM worker. Fitted by workers.sim.calibration from bench/data/
# cpu_tiny_calibration.json (`python bench/sim_fidelity.py --part a --save-calibration`;
# a unit test checks these numbers still are that file's fit).
CPU_TINY_COSTS = LinearCosts(
    step_overhead_s=2.481e-3,
    prefill_token_s=15.41e-6,
    decode_token_s=123.4e-6,
    context_token_s=0.1557e-6,
    attention_pair_s=5.709e-9,
)
# The same worker's API server: the time a request spends outside the engine, for
# client-view replays (workers.sim.frontend); the engines themselves do not add it.
CPU_TINY_FRONTEND = FrontendLatency(base_s=5.384e-3, per_running_s=0.1149e-3)
CPU_TINY_KV_BYTES_PER_TOKEN = 2 * 2 * 2 * 64 * 2.0
CPU_KV_CACHE_BYTES = 4 * GIB  # vLLM's CPU backend default VLLM_CPU_KVCACHE_SPACE=4 (GiB)


class RooflineProfileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["roofline"] = "roofline"
    name: str = Field(min_length=1)
    model: str = Field(min_length=1, description="a ModelSpec name")
    hardware: str = Field(min_length=1, description="a HardwareSpec name")
    tp: int = Field(default=1, ge=1)


class MeasuredProfileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["measured"] = "measured"
    name: str = Field(min_length=1)
    costs: LinearCosts
    kv_bytes_per_token: float = Field(gt=0)
    kv_cache_bytes: float = Field(gt=0, description="KV space (CPU: VLLM_CPU_KVCACHE_SPACE)")
    max_model_len: int = Field(ge=2)
    description: str = ""


ProfileSpec = Annotated[RooflineProfileSpec | MeasuredProfileSpec, Field(discriminator="type")]


class ProfileFile(BaseModel):
    """A file of extra specs: models and hardware first, profiles may name any of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[ModelSpec] = []
    hardware: list[HardwareSpec] = []
    profiles: list[ProfileSpec] = []


BUILTIN_MODELS: tuple[ModelSpec, ...] = (LLAMA_31_8B, LLAMA_31_70B)
BUILTIN_HARDWARE: tuple[HardwareSpec, ...] = (H100_80GB, A100_80GB, A100_40GB)
BUILTIN_PROFILES: tuple[RooflineProfileSpec | MeasuredProfileSpec, ...] = (
    RooflineProfileSpec(name="llama3-8b-h100", model="llama-3.1-8b", hardware="h100-80gb"),
    RooflineProfileSpec(name="llama3-8b-a100", model="llama-3.1-8b", hardware="a100-80gb"),
    RooflineProfileSpec(name="llama3-8b-a100-40gb", model="llama-3.1-8b", hardware="a100-40gb"),
    *(
        RooflineProfileSpec(
            name=f"llama3-70b-{gpu}-tp{tp}", model="llama-3.1-70b", hardware=f"{gpu}-80gb", tp=tp
        )
        for gpu in ("h100", "a100")
        for tp in (4, 8)
    ),
    MeasuredProfileSpec(
        name="cpu-tiny",
        costs=CPU_TINY_COSTS,
        kv_bytes_per_token=CPU_TINY_KV_BYTES_PER_TOKEN,
        kv_cache_bytes=CPU_KV_CACHE_BYTES,
        max_model_len=2048,
        description="tiny model on the 2-core CPU vLLM worker (measured costs)",
    ),
)


class ProfileError(ValueError):
    """An unknown profile name, or a profile file that does not validate."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A resolved profile: a step-time model and the memory that sizes the KV cache."""

    name: str
    description: str
    step_time: StepTimeModel
    max_model_len: int
    kv_bytes_per_token: float  # per device
    kv_memory_bytes: float  # per device: total memory, or the fixed KV space
    fixed_bytes: float  # per device memory not available to the KV cache
    scales_with_utilization: bool  # GPU memory times gpu_memory_utilization; CPU: fixed

    def num_blocks(self, config: EngineConfig) -> int:
        """KV blocks vLLM would allocate: memory left after weights and reserves at
        ``gpu_memory_utilization``, in blocks (or ``num_gpu_blocks`` when given)."""
        if config.num_gpu_blocks is not None:
            return config.num_gpu_blocks
        memory = self.kv_memory_bytes
        if self.scales_with_utilization:
            memory *= config.gpu_memory_utilization
        blocks = int((memory - self.fixed_bytes) // (self.kv_bytes_per_token * config.block_size))
        if blocks < 1:
            raise ProfileError(f"profile {self.name!r}: the weights leave no room for KV cache")
        return blocks

    def max_len(self, config: EngineConfig) -> int:
        return config.max_model_len or self.max_model_len


def _resolve(
    spec: RooflineProfileSpec | MeasuredProfileSpec,
    models: Mapping[str, ModelSpec],
    hardware: Mapping[str, HardwareSpec],
) -> Profile:
    if isinstance(spec, MeasuredProfileSpec):
        return Profile(
            name=spec.name,
            description=spec.description or "measured linear step costs",
            step_time=LinearStepTime(spec.costs),
            max_model_len=spec.max_model_len,
            kv_bytes_per_token=spec.kv_bytes_per_token,
            kv_memory_bytes=spec.kv_cache_bytes,
            fixed_bytes=0.0,
            scales_with_utilization=False,
        )
    if spec.model not in models:
        raise ProfileError(f"profile {spec.name!r}: unknown model {spec.model!r}")
    if spec.hardware not in hardware:
        raise ProfileError(f"profile {spec.name!r}: unknown hardware {spec.hardware!r}")
    model, gpu = models[spec.model], hardware[spec.hardware]
    return Profile(
        name=spec.name,
        description=f"{model.name} on {spec.tp}x {gpu.name}",
        step_time=RooflineStepTime(model, gpu, spec.tp),
        max_model_len=model.max_model_len,
        kv_bytes_per_token=model.kv_bytes_per_token(spec.tp),
        kv_memory_bytes=gpu.memory_bytes,
        fixed_bytes=model.weights_bytes / spec.tp + gpu.reserved_bytes,
        scales_with_utilization=True,
    )


class ProfileRegistry:
    """Profiles by name, built once at start-up; immutable after construction."""

    def __init__(
        self,
        specs: Iterable[RooflineProfileSpec | MeasuredProfileSpec],
        *,
        models: Iterable[ModelSpec] = BUILTIN_MODELS,
        hardware: Iterable[HardwareSpec] = BUILTIN_HARDWARE,
    ) -> None:
        self._models = {m.name: m for m in models}
        self._hardware = {h.name: h for h in hardware}
        self._specs: dict[str, RooflineProfileSpec | MeasuredProfileSpec] = {}
        self._profiles: dict[str, Profile] = {}
        for spec in specs:
            self._specs[spec.name] = spec  # a later spec of the same name replaces one
            self._profiles[spec.name] = _resolve(spec, self._models, self._hardware)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._profiles))

    def get(self, name: str) -> Profile:
        try:
            return self._profiles[name]
        except KeyError:
            known = ", ".join(self.names)
            raise ProfileError(f"unknown profile {name!r} (known: {known})") from None

    def with_file(self, path: str | Path) -> ProfileRegistry:
        """A new registry with the models, hardware and profiles of ``path`` added
        (replacing same-named ones)."""
        extra = load_profile_file(path)
        return ProfileRegistry(
            [*self._specs.values(), *extra.profiles],
            models=[*self._models.values(), *extra.models],
            hardware=[*self._hardware.values(), *extra.hardware],
        )


def load_profile_file(path: str | Path) -> ProfileFile:
    text = Path(path).read_text()
    try:
        raw = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        return ProfileFile.model_validate(raw)
    except (ValidationError, ValueError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: {exc}") from exc


def builtin_registry() -> ProfileRegistry:
    return ProfileRegistry(BUILTIN_PROFILES)
