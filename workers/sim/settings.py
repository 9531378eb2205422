"""Validated configuration of one simulated worker.

Everything the simulator does is derived from this one frozen model, so a typo or an
impossible value (a negative delay, a zero batch size) fails at start-up with a clear
message instead of producing a worker that quietly behaves unlike vLLM.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workers.sim.engine_config import EngineConfig
from workers.sim.waiting import SchedulingPolicy


class SimSettings(BaseModel):
    """What ``tidegate sim-worker`` is started with (one served model per worker)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        min_length=1, description="served model name, like vLLM's --served-model-name"
    )
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=0, le=65535)
    ttft_ms: float = Field(
        default=0.0, ge=0.0, allow_inf_nan=False, description="admission to first token"
    )
    token_delay_ms: float = Field(
        default=0.0, ge=0.0, allow_inf_nan=False, description="gap between later tokens"
    )
    max_num_seqs: int = Field(default=256, ge=1, description="concurrently running sequences")
    output_tokens: int = Field(default=64, ge=1, description="natural output length (EOS)")
    max_model_len: int = Field(default=8192, ge=2, description="prompt + output token limit")
    embedding_dim: int = Field(default=16, ge=1, le=65536)
    profile: str | None = Field(
        default=None,
        min_length=1,
        description="model-on-hardware profile of the batching model; None: fixed delays",
    )
    profile_file: str | None = Field(default=None, description="extra profiles (YAML/JSON)")
    max_num_batched_tokens: int = Field(default=8192, ge=1)
    block_size: int = Field(default=16, ge=1)
    num_gpu_blocks: int | None = Field(default=None, ge=1)
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    enable_prefix_caching: bool = True
    scheduling_policy: SchedulingPolicy = Field(
        default="fcfs",
        description="vLLM's --scheduling-policy; a request's non-zero `priority` is refused "
        "under fcfs, as vLLM refuses it",
    )
    drain_grace_s: float = Field(
        default=30.0, ge=0.0, allow_inf_nan=False, description="SIGTERM: time to finish"
    )

    @model_validator(mode="after")
    def _delays_need_fixed_delay_engine(self) -> SimSettings:
        if self.profile is not None and (self.ttft_ms or self.token_delay_ms):
            raise ValueError(
                "ttft_ms and token_delay_ms apply to the fixed-delay engine only; "
                "with a profile, timing comes from the profile"
            )
        return self

    @model_validator(mode="after")
    def _priority_needs_batching_model(self) -> SimSettings:
        if self.scheduling_policy == "priority" and self.profile is None:
            raise ValueError(
                "scheduling_policy priority is modelled by the batching model only: give a "
                "profile (the fixed-delay engine serves in arrival order)"
            )
        return self

    def engine_config(self) -> EngineConfig:
        """The batching model's arguments (used only with a profile)."""
        return EngineConfig(
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            block_size=self.block_size,
            num_gpu_blocks=self.num_gpu_blocks,
            gpu_memory_utilization=self.gpu_memory_utilization,
            enable_prefix_caching=self.enable_prefix_caching,
            max_model_len=self.max_model_len,
            scheduling_policy=self.scheduling_policy,
        )

    @property
    def ttft_s(self) -> float:
        return self.ttft_ms / 1000.0

    @property
    def token_delay_s(self) -> float:
        return self.token_delay_ms / 1000.0
