"""Validated configuration of one simulated worker.

Everything the simulator does is derived from this one frozen model, so a typo or an
impossible value (a negative delay, a zero batch size) fails at start-up with a clear
message instead of producing a worker that quietly behaves unlike vLLM.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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

    @property
    def ttft_s(self) -> float:
        return self.ttft_ms / 1000.0

    @property
    def token_delay_s(self) -> float:
        return self.token_delay_ms / 1000.0
