"""Validated settings of one vLLM worker: what vLLM is started with, and how it drains.

Only the engine options Tidegate reasons about are typed here; anything else goes through
``extra_args`` verbatim, so a new vLLM flag never needs a Tidegate release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VllmWorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="model path or hub id, vLLM's --model")
    served_model_name: str | None = Field(
        None, min_length=1, description="name clients ask for (default: the model)"
    )
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8000, ge=1, le=65535)

    # Engine capacity and batching.
    max_num_seqs: int | None = Field(None, ge=1, description="sequences running at once")
    max_num_batched_tokens: int | None = Field(None, ge=1, description="tokens per step")
    max_model_len: int | None = Field(None, ge=16, description="prompt + output tokens")
    block_size: int | None = Field(None, ge=1, description="tokens per KV block")
    enable_prefix_caching: bool = True
    scheduling_policy: Literal["fcfs", "priority"] | None = Field(
        None,
        description="vLLM's waiting-queue order (None: vLLM's default, fcfs); a gateway with "
        "upstream.engine_priority needs priority",
    )
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0.0, le=1.0)
    kv_cache_memory_bytes: int | None = Field(
        None, ge=1, description="KV cache size in bytes (overrides memory utilization)"
    )

    # CPU backend.
    enforce_eager: bool = Field(False, description="no graph compilation (needed on CPU)")
    cpu_kvcache_space_gib: int | None = Field(
        None, ge=1, description="KV cache GiB on the CPU backend (VLLM_CPU_KVCACHE_SPACE)"
    )

    extra_args: tuple[str, ...] = Field((), description="passed to vLLM verbatim, last")
    cache_dir: Path | None = Field(
        None, description="vLLM and TorchInductor caches (default: vLLM's own, in ~/.cache)"
    )

    # Drain on SIGTERM.
    drain_grace_s: float = Field(
        25.0, ge=0.0, allow_inf_nan=False, description="longest wait for in-flight requests"
    )
    drain_poll_s: float = Field(0.25, gt=0.0, allow_inf_nan=False)
    stop_timeout_s: float = Field(
        20.0, gt=0.0, allow_inf_nan=False, description="after SIGTERM to vLLM, before SIGKILL"
    )

    @property
    def name(self) -> str:
        return self.served_model_name or self.model

    @property
    def local_url(self) -> str:
        """Where this machine reaches the server (a wildcard bind is reached on loopback)."""
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::"} else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
