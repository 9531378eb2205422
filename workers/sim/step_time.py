"""How long one engine step takes, from the shape of its batch.

Two models share one small interface (``StepTimeModel``):

- ``RooflineStepTime`` predicts a GPU step from first principles. Each layer runs its
  weight GEMMs and then attention, as separate kernels, so the step costs the roofline of
  the GEMMs (stream the weights, or do the dense FLOPs, whichever is slower) plus the
  roofline of attention (read the batch's KV cache, or do the attention FLOPs), plus
  tensor-parallel all-reduces and a fixed per-step overhead::

      t_gemm = max(W / tp / (bw * mem_eff),
                   (2 P_dense tokens + 2 h V sampled) / tp / (peak * compute_eff))
      t_attn = max(kv_bytes_per_token / tp * context_tokens / (bw * mem_eff),
                   4 L d_attn pairs / tp / (peak * compute_eff))
      t_comm = 2 L (allreduce_latency + 2 (tp - 1) / tp * tokens * h * act_bytes / link_bw)
      step   = t_gemm + t_attn + t_comm + step_overhead

- ``LinearStepTime`` is data-driven: a per-step overhead plus measured costs per token,
  per KV entry read and per attention pair, plus per-sequence host work where it no
  longer hides behind the model's. It models the CPU worker, whose costs come from measurements, not
  datasheets (``workers.sim.calibration`` fits it).

The specs are typed, frozen and reject unknown fields, so a profile file with a typo
fails when it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class BatchShape:
    """What one step computes, summed over its scheduled requests.

    ``context_tokens`` counts the KV entries the step's attention reads (each request's
    computed tokens plus its new ones); ``attention_pairs`` counts (query, key) pairs
    under the causal mask; ``num_sampled`` is how many requests produce a token.
    """

    num_seqs: int
    num_tokens: int
    num_prefill_tokens: int
    num_sampled: int
    context_tokens: int
    attention_pairs: int

    @property
    def num_decode_tokens(self) -> int:
        return self.num_tokens - self.num_prefill_tokens


class StepTimeModel(Protocol):
    def step_seconds(self, batch: BatchShape) -> float: ...


class ModelSpec(BaseModel):
    """A decoder-only transformer, as its model card and config.json describe it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    params: float = Field(gt=0, description="total parameters, embeddings included")
    num_layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    vocab_size: int = Field(ge=1)
    tied_embeddings: bool = False
    weight_bytes: float = Field(default=2.0, gt=0, description="bytes per parameter")
    kv_bytes: float = Field(default=2.0, gt=0, description="bytes per cached K or V value")
    max_model_len: int = Field(ge=2)
    source: str = ""

    @property
    def weights_bytes(self) -> float:
        return self.params * self.weight_bytes

    def kv_bytes_per_token(self, tp: int = 1) -> float:
        """K and V for every layer, per GPU; KV heads are split over ``tp`` GPUs
        (replicated when there are fewer heads than GPUs)."""
        heads_per_gpu = max(self.num_kv_heads / tp, 1.0)
        return 2 * self.num_layers * heads_per_gpu * self.head_dim * self.kv_bytes

    @property
    def dense_params(self) -> float:
        """Parameters every token multiplies through (no embedding table, no LM head)."""
        embedding = self.vocab_size * self.hidden_size
        return self.params - embedding * (1 if self.tied_embeddings else 2)


class HardwareSpec(BaseModel):
    """One accelerator: datasheet peaks plus the fractions vLLM reaches in practice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    memory_bytes: float = Field(gt=0)
    hbm_bandwidth: float = Field(gt=0, description="bytes/s")
    peak_flops: float = Field(gt=0, description="dense BF16 FLOP/s")
    link_bandwidth: float = Field(gt=0, description="GPU-to-GPU bytes/s, one direction")
    allreduce_latency_s: float = Field(ge=0, description="fixed cost of one all-reduce")
    mem_efficiency: float = Field(gt=0, le=1)
    compute_efficiency: float = Field(gt=0, le=1)
    step_overhead_s: float = Field(ge=0, description="scheduling, launch, sampling per step")
    reserved_bytes: float = Field(
        ge=0, description="per-GPU memory vLLM keeps for activations, graphs, the runtime"
    )
    source: str = ""


class RooflineStepTime:
    """``StepTimeModel`` for one model on ``tp`` identical GPUs."""

    __slots__ = (
        "_attn_pair_flops",
        "_compute_rate",
        "_dense_flops",
        "_fixed_comm",
        "_kv_bytes_per_token",
        "_lm_head_flops",
        "_mem_rate",
        "_overhead",
        "_per_token_comm",
        "_weights_bytes",
    )

    def __init__(self, model: ModelSpec, hardware: HardwareSpec, tp: int = 1) -> None:
        if tp < 1:
            raise ValueError("tp must be at least 1")
        self._weights_bytes = model.weights_bytes / tp
        self._kv_bytes_per_token = model.kv_bytes_per_token(tp)
        self._mem_rate = hardware.hbm_bandwidth * hardware.mem_efficiency
        self._compute_rate = hardware.peak_flops * hardware.compute_efficiency * tp
        self._dense_flops = 2.0 * model.dense_params
        self._lm_head_flops = 2.0 * model.hidden_size * model.vocab_size
        attn_width = model.num_attention_heads * model.head_dim
        self._attn_pair_flops = 4.0 * model.num_layers * attn_width
        allreduces = 2 * model.num_layers if tp > 1 else 0
        self._fixed_comm = allreduces * hardware.allreduce_latency_s
        ring = 2 * (tp - 1) / tp
        self._per_token_comm = (
            allreduces * ring * model.hidden_size * model.weight_bytes / hardware.link_bandwidth
        )
        self._overhead = hardware.step_overhead_s

    def step_seconds(self, batch: BatchShape) -> float:
        mem_rate, compute_rate = self._mem_rate, self._compute_rate
        weights = self._weights_bytes / mem_rate
        gemm = (
            self._dense_flops * batch.num_tokens + self._lm_head_flops * batch.num_sampled
        ) / compute_rate
        kv_read = self._kv_bytes_per_token * batch.context_tokens / mem_rate
        attn = self._attn_pair_flops * batch.attention_pairs / compute_rate
        comm = self._fixed_comm + self._per_token_comm * batch.num_tokens
        return (
            (weights if weights > gemm else gemm)
            + (kv_read if kv_read > attn else attn)
            + comm
            + self._overhead
        )


class LinearCosts(BaseModel):
    """Measured costs of one worker: a step is ``step_overhead_s`` plus per-token terms
    (``context_token_s`` per KV entry read, ``attention_pair_s`` per causal (query, key)
    pair, which makes a long prefill grow with the square of its length), plus
    ``prefill_step_extra_s`` when the step carries any prompt tokens.

    ``host_seq_s`` and ``host_slack_s`` describe per-sequence work outside the model
    (scheduling, detokenizing, streaming) that shares the cores with it, as on the CPU
    worker: it overlaps the model's work until ``host_seq_s * num_seqs`` exceeds
    ``host_slack_s``, and lengthens the step by the excess beyond that. Zero (the
    default) means none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_overhead_s: float = Field(ge=0, allow_inf_nan=False)
    prefill_token_s: float = Field(ge=0, allow_inf_nan=False)
    decode_token_s: float = Field(ge=0, allow_inf_nan=False)
    context_token_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    attention_pair_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    prefill_step_extra_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    host_seq_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    host_slack_s: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class LinearStepTime:
    """``StepTimeModel`` from ``LinearCosts``."""

    __slots__ = ("_c",)

    def __init__(self, costs: LinearCosts) -> None:
        self._c = costs

    def step_seconds(self, batch: BatchShape) -> float:
        c = self._c
        seconds = (
            c.step_overhead_s
            + c.prefill_token_s * batch.num_prefill_tokens
            + c.decode_token_s * batch.num_decode_tokens
            + c.context_token_s * batch.context_tokens
            + c.attention_pair_s * batch.attention_pairs
        )
        if batch.num_prefill_tokens:
            seconds += c.prefill_step_extra_s
        excess = c.host_seq_s * batch.num_seqs - c.host_slack_s
        return seconds + excess if excess > 0 else seconds
