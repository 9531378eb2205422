"""Real vLLM workers for end-to-end tests: the tiny model, two ``tidegate worker``
processes started together (each takes about a minute on two CPU cores), once a module."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fleet import MAX_NUM_SEQS, MODEL, RUN
from tidegate.localproc import LocalWorker, start_vllm_worker, stop_all, wait_healthy
from tidegate.up import installed_vllm


@pytest.fixture(scope="module")
def tiny_model() -> Path:
    directory = RUN / "tiny-model"
    subprocess.run(
        [sys.executable, "-m", "tidegate", "make-tiny-model", str(directory)],
        check=True,
        timeout=300,
    )
    return directory


@pytest.fixture(scope="module")
def worker_logs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Each worker's output, private to this test session (others may run beside it)."""
    directory = tmp_path_factory.mktemp("vllm-logs")
    return [directory / f"worker-{index}.log" for index in range(2)]


@pytest.fixture(scope="module")
def vllm_workers(tiny_model: Path, worker_logs: list[Path]) -> Iterator[list[LocalWorker]]:
    workers = [
        start_vllm_worker(
            str(tiny_model),
            served_model_name=MODEL,
            cpu=installed_vllm() == "cpu",
            kv_cache="256Mi",
            cache_dir=RUN / "cache",
            args=["--max-num-seqs", str(MAX_NUM_SEQS), "--drain-grace-s", "60"],
            vllm_args=["--max-model-len", "2048"],
            log_file=log,
        )
        for log in worker_logs
    ]
    try:
        try:
            wait_healthy(workers, timeout_s=300)
        except (RuntimeError, TimeoutError) as exc:
            tails = "\n".join(f"--- {log}\n{log.read_text()[-3000:]}" for log in worker_logs)
            raise RuntimeError(f"{exc}\n{tails}") from None
        yield workers
    finally:
        stop_all(workers)
