"""Step-time models (monotonicity, tensor parallelism) and the profile registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import (
    A100_80GB,
    BUILTIN_HARDWARE,
    BUILTIN_MODELS,
    H100_80GB,
    LLAMA_31_8B,
    LLAMA_31_70B,
    ProfileError,
    builtin_registry,
)
from workers.sim.step_time import BatchShape, LinearCosts, LinearStepTime, RooflineStepTime


def decode(seqs: int, context_each: int) -> BatchShape:
    total = seqs * context_each
    return BatchShape(seqs, seqs, 0, seqs, total, total)


def prefill(tokens: int) -> BatchShape:
    return BatchShape(1, tokens, tokens, 1, tokens, tokens * (tokens + 1) // 2)


H100_8B = RooflineStepTime(LLAMA_31_8B, H100_80GB)


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        (decode(1, 100), decode(64, 100)),
        (decode(64, 100), decode(256, 100)),
        (decode(32, 100), decode(32, 4000)),
        (prefill(128), prefill(2048)),
        (prefill(2048), prefill(8192)),
        (decode(8, 500), BatchShape(9, 520, 512, 9, 4512, 135_000)),
    ],
)
def test_more_work_never_takes_less_time(smaller: BatchShape, larger: BatchShape) -> None:
    assert H100_8B.step_seconds(smaller) <= H100_8B.step_seconds(larger)


def test_small_decode_is_bound_by_streaming_the_weights() -> None:
    weights_s = LLAMA_31_8B.weights_bytes / (H100_80GB.hbm_bandwidth * H100_80GB.mem_efficiency)
    seconds = H100_8B.step_seconds(decode(1, 1))
    assert weights_s < seconds < weights_s + H100_80GB.step_overhead_s + 1e-4


def test_large_prefill_is_bound_by_compute() -> None:
    m, batch = LLAMA_31_8B, prefill(8192)
    flops = (
        2 * m.dense_params * batch.num_tokens
        + 2 * m.hidden_size * m.vocab_size
        + 4 * m.num_layers * m.num_attention_heads * m.head_dim * batch.attention_pairs
    )
    compute_s = flops / (H100_80GB.peak_flops * H100_80GB.compute_efficiency)
    assert H100_8B.step_seconds(batch) == pytest.approx(
        compute_s + H100_80GB.step_overhead_s, rel=1e-9
    )


def test_a_faster_gpu_takes_less_time() -> None:
    a100 = RooflineStepTime(LLAMA_31_8B, A100_80GB)
    for batch in (decode(1, 100), decode(128, 500), prefill(4096)):
        assert H100_8B.step_seconds(batch) < a100.step_seconds(batch)


@pytest.mark.parametrize("batch", [decode(1, 100), decode(64, 1000), prefill(4096)])
def test_tensor_parallelism_splits_the_work_and_adds_communication(batch: BatchShape) -> None:
    tp1, tp4, tp8 = (RooflineStepTime(LLAMA_31_70B, H100_80GB, tp) for tp in (1, 4, 8))
    t1, t4, t8 = (m.step_seconds(batch) for m in (tp1, tp4, tp8))
    assert t8 < t4 < t1
    # Less than linear: weights and FLOPs divide, the all-reduces and overhead do not.
    assert t4 > t1 / 4 and t8 > t4 / 2
    comm = 2 * LLAMA_31_70B.num_layers * H100_80GB.allreduce_latency_s
    no_comm = RooflineStepTime(
        LLAMA_31_70B, H100_80GB.model_copy(update={"allreduce_latency_s": 0.0}), 4
    )
    assert t4 - no_comm.step_seconds(batch) >= comm


def test_tp_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RooflineStepTime(LLAMA_31_8B, H100_80GB, 0)


def test_linear_costs_add_up() -> None:
    model = LinearStepTime(
        LinearCosts(
            step_overhead_s=0.01,
            prefill_token_s=0.001,
            decode_token_s=0.002,
            context_token_s=0.0001,
            prefill_step_extra_s=0.005,
        )
    )
    assert model.step_seconds(decode(3, 10)) == pytest.approx(0.01 + 0.006 + 0.003)
    assert model.step_seconds(prefill(10)) == pytest.approx(0.01 + 0.01 + 0.001 + 0.005)


def test_linear_costs_charge_attention_pairs_and_excess_host_work() -> None:
    costs = LinearCosts(
        step_overhead_s=0.002, prefill_token_s=0.0, decode_token_s=0.0001, attention_pair_s=1e-8
    )
    assert LinearStepTime(costs).step_seconds(prefill(1000)) == pytest.approx(
        0.002 + 1e-8 * 1000 * 1001 / 2
    )
    host = LinearStepTime(costs.model_copy(update={"host_seq_s": 0.0003, "host_slack_s": 0.0024}))
    assert host.step_seconds(decode(8, 10)) == pytest.approx(0.002 + 0.0008 + 1e-8 * 80)
    assert host.step_seconds(decode(16, 10)) == pytest.approx(
        0.002 + 0.0016 + 1e-8 * 160 + (0.0003 * 16 - 0.0024)
    )


def test_model_specs_match_their_cards() -> None:
    assert LLAMA_31_8B.kv_bytes_per_token() == 128 * 1024  # 2 * 32 layers * 8 * 128 * 2 B
    assert LLAMA_31_70B.kv_bytes_per_token(8) == 2 * 80 * 1 * 128 * 2
    assert LLAMA_31_70B.kv_bytes_per_token(16) == LLAMA_31_70B.kv_bytes_per_token(8)
    assert 6.9e9 < LLAMA_31_8B.dense_params < 7.0e9  # without embeddings and LM head
    assert all(spec.source for spec in (*BUILTIN_MODELS, *BUILTIN_HARDWARE))


# -- profiles -------------------------------------------------------------------------


def test_builtin_profiles_cover_the_required_combinations() -> None:
    names = builtin_registry().names
    for required in (
        "llama3-8b-h100",
        "llama3-8b-a100",
        "llama3-70b-h100-tp4",
        "llama3-70b-h100-tp8",
        "llama3-70b-a100-tp4",
        "llama3-70b-a100-tp8",
        "cpu-tiny",
    ):
        assert required in names


def test_kv_blocks_come_from_memory_left_after_the_weights() -> None:
    registry = builtin_registry()
    h100 = registry.get("llama3-8b-h100")
    config = EngineConfig()
    blocks = h100.num_blocks(config)
    free = H100_80GB.memory_bytes * 0.9 - LLAMA_31_8B.weights_bytes - H100_80GB.reserved_bytes
    assert blocks == int(free // (128 * 1024 * 16))
    assert 25_000 < blocks < 30_000  # ~440k tokens, what vLLM logs for this setup
    assert h100.num_blocks(config.model_copy(update={"gpu_memory_utilization": 0.5})) < blocks
    assert h100.num_blocks(config.model_copy(update={"num_gpu_blocks": 123})) == 123
    tp8 = registry.get("llama3-70b-h100-tp8").num_blocks(config)
    assert tp8 > registry.get("llama3-70b-h100-tp4").num_blocks(config)


def test_cpu_profile_has_a_fixed_kv_space() -> None:
    cpu = builtin_registry().get("cpu-tiny")
    config = EngineConfig()
    assert cpu.num_blocks(config) == cpu.num_blocks(
        config.model_copy(update={"gpu_memory_utilization": 0.1})
    )


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ProfileError, match=r"known: .*llama3-8b-h100"):
        builtin_registry().get("llama3-8b-tpu")


def test_profile_file_adds_and_replaces_profiles(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(
        """
hardware:
  - {name: l4, memory_bytes: 24.0e9, hbm_bandwidth: 300.0e9, peak_flops: 121.0e12,
     link_bandwidth: 32.0e9, allreduce_latency_s: 0.0001, mem_efficiency: 0.7,
     compute_efficiency: 0.5, step_overhead_s: 0.002, reserved_bytes: 2.0e9}
profiles:
  - {type: roofline, name: llama3-8b-l4, model: llama-3.1-8b, hardware: l4}
  - type: measured
    name: cpu-tiny
    costs: {step_overhead_s: 0.003, prefill_token_s: 1.0e-5, decode_token_s: 2.0e-5}
    kv_bytes_per_token: 1024
    kv_cache_bytes: 1.0e9
    max_model_len: 1024
"""
    )
    registry = builtin_registry().with_file(path)
    assert registry.get("llama3-8b-l4").description == "llama-3.1-8b on 1x l4"
    assert registry.get("cpu-tiny").max_model_len == 1024
    assert "llama3-8b-h100" in registry.names


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("profiles: [{type: roofline, name: x, model: nope, hardware: h100-80gb}]", "nope"),
        ("profiles: [{type: roofline, name: x, model: llama-3.1-8b, hardware: h1}]", "h1"),
        ("profiles: [{type: roofline, name: x, model: llama-3.1-8b, hw: h100-80gb}]", "hw"),
        ("profiles: [{type: quantum, name: x}]", "quantum"),
        ("profiles: [{name: x", "while parsing"),
    ],
)
def test_bad_profile_files_fail_with_a_clear_message(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=complaint):
        builtin_registry().with_file(path)
