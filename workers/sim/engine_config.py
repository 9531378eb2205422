"""The engine arguments the batching model honours, with vLLM's names and defaults, and
the request shape its core takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workers.sim.engine import FinishReason


class EngineConfig(BaseModel):
    """``--max-num-seqs``, ``--max-num-batched-tokens``, ``--block-size``,
    ``--num-gpu-blocks-override``, ``--gpu-memory-utilization``,
    ``--enable-prefix-caching``, ``--max-model-len`` and ``--scheduling-policy``, as in
    vLLM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_num_seqs: int = Field(default=256, ge=1)
    max_num_batched_tokens: int = Field(default=8192, ge=1)
    block_size: int = Field(default=16, ge=1)
    num_gpu_blocks: int | None = Field(default=None, ge=1, description="overrides memory")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    enable_prefix_caching: bool = True
    max_model_len: int | None = Field(default=None, ge=2, description="None: the model's")
    scheduling_policy: Literal["fcfs", "priority"] = "fcfs"


@dataclass(frozen=True, slots=True)
class CoreRequest:
    """One sequence as the core sees it: its output length is decided up front."""

    request_id: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: FinishReason = "length"
    block_hashes: tuple[int, ...] | None = None
    priority: int = 0
    """Under the ``priority`` policy, lower runs earlier (vLLM's convention)."""
