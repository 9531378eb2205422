"""Start and stop local worker processes (used by ``tidegate up``, tests and benchmarks)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalWorker:
    """A local server process (a worker, or a gateway) and its base URL."""

    url: str
    process: subprocess.Popen[bytes]

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sim_worker(
    model: str, *, host: str = "127.0.0.1", port: int | None = None, args: Sequence[str] = ()
) -> LocalWorker:
    port = port or free_port(host)
    command = [
        sys.executable,
        "-m",
        "tidegate",
        "sim-worker",
        "--host",
        host,
        "--port",
        str(port),
        "--model",
        model,
        *args,
    ]
    return LocalWorker(f"http://{host}:{port}", subprocess.Popen(command))


def start_vllm_worker(
    model: str,
    *,
    served_model_name: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    cpu: bool = False,
    kv_cache: str | None = None,
    cache_dir: Path | None = None,
    args: Sequence[str] = (),
    vllm_args: Sequence[str] = (),
    log_file: Path | None = None,
) -> LocalWorker:
    """Start ``tidegate worker`` (real vLLM behind the drain wrapper) on a free port.

    ``cpu`` adds what vLLM's CPU build needs to start on a small machine: no graph
    compilation and an explicit KV cache (``kv_cache``, default 1Gi) instead of most of
    the memory. ``args`` go to ``tidegate worker``, ``vllm_args`` to vLLM itself. Output
    goes to ``log_file`` if given.
    """
    port = port or free_port(host)
    command = [sys.executable, "-m", "tidegate", "worker", "--model", model]
    command += ["--host", host, "--port", str(port)]
    if served_model_name:
        command += ["--served-model-name", served_model_name]
    if cpu:
        command.append("--enforce-eager")
        kv_cache = kv_cache or "1Gi"
    if kv_cache:
        command += ["--kv-cache-memory-bytes", kv_cache]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    command += [*args, "--", *vllm_args]
    if log_file is None:
        return LocalWorker(f"http://{host}:{port}", subprocess.Popen(command))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return LocalWorker(f"http://{host}:{port}", process)


def wait_healthy(
    workers: Sequence[LocalWorker], timeout_s: float = 60.0, path: str = "/health"
) -> None:
    """Poll each process's ``path`` until it answers 200; fail fast if one exits."""
    deadline = time.monotonic() + timeout_s
    pending = list(workers)
    while pending:
        worker = pending[0]
        code = worker.process.poll()
        if code is not None:
            raise RuntimeError(f"{worker.url} exited with code {code} before it was ready")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(worker.url + path, timeout=1) as response,
        ):
            if response.status == 200:
                pending.pop(0)
                continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"{worker.url}{path} not ready after {timeout_s:g}s")
        time.sleep(0.05)


def stop_all(workers: Sequence[LocalWorker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()
    for worker in workers:
        worker.stop()
