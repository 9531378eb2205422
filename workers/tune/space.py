"""The search space: engine configurations on GPU types, times a replica count, and which
of them cannot run at all (before any simulation).

An ``EngineGroup`` is everything about a deployment except how many replicas it has: the
GPU type, the tensor-parallel degree and vLLM's batching limits. A ``Candidate`` is a group
with a replica count. ``check_group`` applies vLLM's own start-up checks to a group: the
weights and the activation reserve must leave room for KV blocks at
``gpu_memory_utilization``, the blocks must hold ``max_model_len`` tokens (by default the
longest request of the trace), ``tp`` must divide
the attention heads, and ``max_num_batched_tokens`` may not be below ``max_num_seqs``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import Profile, ProfileRegistry, RooflineProfileSpec
from workers.sim.step_time import HardwareSpec, ModelSpec

GIB = 1024**3
MIB = 1024**2

ProfileFor = Callable[[str, int], Profile]
"""The engine model of ``tp`` GPUs of the named hardware serving the model being tuned."""


@dataclass(frozen=True, slots=True, order=True)
class EngineGroup:
    """One engine configuration on one GPU type; replicas are chosen by the search."""

    hardware: str
    tp: int
    max_num_seqs: int
    max_num_batched_tokens: int

    @property
    def label(self) -> str:
        return (
            f"{self.hardware} tp{self.tp} seqs{self.max_num_seqs} mbt{self.max_num_batched_tokens}"
        )

    def with_replicas(self, replicas: int) -> Candidate:
        return Candidate(self, replicas)

    def engine_config(self, base: EngineConfig) -> EngineConfig:
        return base.model_copy(
            update={
                "max_num_seqs": self.max_num_seqs,
                "max_num_batched_tokens": self.max_num_batched_tokens,
            }
        )


@dataclass(frozen=True, slots=True, order=True)
class Candidate:
    """A deployment: ``replicas`` engines of ``group`` behind a least-loaded router."""

    group: EngineGroup
    replicas: int

    @property
    def gpus(self) -> int:
        return self.replicas * self.group.tp

    @property
    def label(self) -> str:
        return f"{self.group.label} x{self.replicas}"


@dataclass(frozen=True, slots=True)
class Misfit:
    """A group vLLM would refuse to start, and why."""

    group: EngineGroup
    kind: Literal["memory", "invalid"]
    reason: str


class SearchSpace(BaseModel):
    """The values swept. Every combination of GPU type, ``tp``, ``max_num_seqs`` and
    ``max_num_batched_tokens`` is a group; each is tried with 1 to ``max_replicas``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hardware: tuple[str, ...] = Field(min_length=1)
    tp: tuple[int, ...] = Field(default=(1, 2, 4, 8), min_length=1)
    max_num_seqs: tuple[int, ...] = Field(default=(64, 128, 256), min_length=1)
    max_num_batched_tokens: tuple[int, ...] = Field(default=(2048, 8192), min_length=1)
    max_replicas: int = Field(default=16, ge=1)

    def groups(self) -> list[EngineGroup]:
        return [
            EngineGroup(hw, tp, seqs, mbt)
            for hw, tp, seqs, mbt in itertools.product(
                self.hardware,
                sorted(set(self.tp)),
                sorted(set(self.max_num_seqs)),
                sorted(set(self.max_num_batched_tokens)),
            )
        ]

    @property
    def num_candidates(self) -> int:
        return len(self.groups()) * self.max_replicas


def roofline_profiles(model: ModelSpec, hardware: dict[str, HardwareSpec]) -> ProfileFor:
    """Profiles of ``model`` on ``tp`` GPUs of each hardware, built on first use."""
    cache: dict[tuple[str, int], Profile] = {}

    def profile_for(name: str, tp: int) -> Profile:
        key = (name, tp)
        if key not in cache:
            spec = RooflineProfileSpec(
                name=f"{model.name}-{name}-tp{tp}", model=model.name, hardware=name, tp=tp
            )
            registry = ProfileRegistry([spec], models=[model], hardware=[hardware[name]])
            cache[key] = registry.get(spec.name)
        return cache[key]

    return profile_for


def _size(num_bytes: float) -> str:
    return f"{num_bytes / GIB:.1f} GiB" if num_bytes >= GIB else f"{num_bytes / MIB:.2f} MiB"


def check_group(
    group: EngineGroup,
    profile: Profile,
    config: EngineConfig,
    *,
    max_model_len: int,
    attention_heads: int | None = None,
) -> Misfit | None:
    """None when vLLM would start ``group`` (``config`` is the group's engine config) with
    ``max_model_len`` (the tuner's default: the trace's longest request); otherwise the
    first reason it would not."""
    if attention_heads is not None and attention_heads % group.tp:
        return Misfit(
            group, "invalid", f"tp {group.tp} does not divide {attention_heads} attention heads"
        )
    if group.max_num_batched_tokens < group.max_num_seqs:
        return Misfit(
            group,
            "invalid",
            f"max_num_batched_tokens {group.max_num_batched_tokens} < "
            f"max_num_seqs {group.max_num_seqs} (vLLM refuses it)",
        )
    usable = profile.kv_memory_bytes
    if profile.scales_with_utilization:
        usable *= config.gpu_memory_utilization
    block_bytes = profile.kv_bytes_per_token * config.block_size
    if usable - profile.fixed_bytes < block_bytes:
        return Misfit(
            group,
            "memory",
            f"weights + activation reserve need {_size(profile.fixed_bytes)} per GPU, "
            f"{_size(usable)} usable",
        )
    kv_tokens = profile.num_blocks(config) * config.block_size
    if kv_tokens < max_model_len:
        return Misfit(
            group,
            "memory",
            f"KV cache holds {kv_tokens:,} tokens per replica, "
            f"less than max_model_len {max_model_len:,}",
        )
    return None


def split_groups(
    groups: list[EngineGroup],
    profile_for: ProfileFor,
    base: EngineConfig,
    *,
    attention_heads: int | None = None,
) -> tuple[list[EngineGroup], list[Misfit]]:
    """The groups vLLM would start, and the others with their reasons."""
    assert base.max_model_len is not None, "the tuner always sets max_model_len"
    fits: list[EngineGroup] = []
    misfits: list[Misfit] = []
    for group in groups:
        misfit = check_group(
            group,
            profile_for(group.hardware, group.tp),
            group.engine_config(base),
            max_model_len=base.max_model_len,
            attention_heads=attention_heads,
        )
        if misfit is None:
            fits.append(group)
        else:
            misfits.append(misfit)
    return fits, misfits
