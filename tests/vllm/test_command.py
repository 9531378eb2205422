"""vLLM's command line and environment from worker settings (pure, table-driven)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from workers.vllm.command import DRAIN_FILE_ENV, DRAIN_MIDDLEWARE, vllm_command, vllm_environment
from workers.vllm.settings import VllmWorkerSettings

PY = "/venv/bin/python"
HEAD = [PY, "-m", "vllm.entrypoints.openai.api_server"]
TAIL = ["--enable-prefix-caching", "--middleware", DRAIN_MIDDLEWARE]
DEFAULTS = [
    *HEAD,
    "--model",
    "m",
    "--served-model-name",
    "m",
    "--host",
    "127.0.0.1",
    "--port",
    "8000",
]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param(
            {"model": "m"},
            [
                *DEFAULTS,
                *TAIL,
            ],
            id="defaults: served under its own name, prefix caching on",
        ),
        pytest.param(
            {
                "model": "/models/llama",
                "served_model_name": "llama",
                "host": "0.0.0.0",
                "port": 9000,
            },
            [
                *HEAD,
                "--model",
                "/models/llama",
                "--served-model-name",
                "llama",
                "--host",
                "0.0.0.0",
                "--port",
                "9000",
                *TAIL,
            ],
            id="path model with a served name",
        ),
        pytest.param(
            {
                "model": "m",
                "max_num_seqs": 8,
                "max_num_batched_tokens": 4096,
                "max_model_len": 2048,
                "block_size": 128,
                "gpu_memory_utilization": 0.85,
                "kv_cache_memory_bytes": 1 << 28,
                "tensor_parallel_size": 2,
            },
            [
                *DEFAULTS,
                "--max-num-seqs",
                "8",
                "--max-num-batched-tokens",
                "4096",
                "--max-model-len",
                "2048",
                "--block-size",
                "128",
                "--gpu-memory-utilization",
                "0.85",
                "--kv-cache-memory-bytes",
                "268435456",
                "--tensor-parallel-size",
                "2",
                *TAIL,
            ],
            id="every engine option",
        ),
        pytest.param(
            {"model": "m", "enable_prefix_caching": False, "enforce_eager": True},
            [
                *DEFAULTS,
                "--no-enable-prefix-caching",
                "--enforce-eager",
                "--middleware",
                DRAIN_MIDDLEWARE,
            ],
            id="prefix caching off, eager (CPU)",
        ),
        pytest.param(
            {"model": "m", "scheduling_policy": "priority"},
            [
                *DEFAULTS,
                "--scheduling-policy",
                "priority",
                *TAIL,
            ],
            id="priority scheduling, for a gateway forwarding engine priorities",
        ),
        pytest.param(
            {"model": "m", "scheduling_policy": "fcfs"},
            [
                *DEFAULTS,
                "--scheduling-policy",
                "fcfs",
                *TAIL,
            ],
            id="fcfs asked for explicitly is passed on",
        ),
        pytest.param(
            {"model": "m", "extra_args": ("--dtype", "float32", "--max-num-seqs", "2")},
            [
                *DEFAULTS,
                *TAIL,
                "--dtype",
                "float32",
                "--max-num-seqs",
                "2",
            ],
            id="extra args verbatim and last, so they win",
        ),
    ],
)
def test_vllm_command(settings, expected):
    assert vllm_command(VllmWorkerSettings(**settings), PY) == expected


@pytest.mark.parametrize(
    ("settings", "added"),
    [
        ({"model": "m"}, {}),
        ({"model": "m", "cpu_kvcache_space_gib": 2}, {"VLLM_CPU_KVCACHE_SPACE": "2"}),
        (
            {"model": "m", "cache_dir": Path("/work/.run/cache")},
            {
                "VLLM_CACHE_ROOT": "/work/.run/cache/vllm",
                "TORCHINDUCTOR_CACHE_DIR": "/work/.run/cache/torchinductor",
            },
        ),
    ],
)
def test_vllm_environment(settings, added):
    env = vllm_environment(VllmWorkerSettings(**settings), {"PATH": "/bin"}, Path("/tmp/d/f"))
    assert env == {"PATH": "/bin", DRAIN_FILE_ENV: "/tmp/d/f", **added}


def test_relative_cache_dir_becomes_absolute():
    env = vllm_environment(
        VllmWorkerSettings(model="m", cache_dir=Path(".run/cache")), {}, Path("/f")
    )
    assert Path(env["VLLM_CACHE_ROOT"]).is_absolute()


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://127.0.0.1:8000"),
        ("::1", "http://[::1]:8000"),
        ("worker-0", "http://worker-0:8000"),
    ],
)
def test_local_url(host, url):
    assert VllmWorkerSettings(model="m", host=host).local_url == url


@pytest.mark.parametrize(
    "bad",
    [
        {"model": ""},
        {"model": "m", "port": 0},
        {"model": "m", "max_num_seqs": 0},
        {"model": "m", "gpu_memory_utilization": 1.5},
        {"model": "m", "drain_grace_s": -1},
        {"model": "m", "tensor_parallel_size": 0},
        {"model": "m", "no_such_option": 1},
        {"model": "m", "scheduling_policy": "lifo"},
        {"model": "m", "scheduling_policy": ""},
    ],
)
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        VllmWorkerSettings(**bad)
