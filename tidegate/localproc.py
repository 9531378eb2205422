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
