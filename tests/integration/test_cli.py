"""The commands a newcomer types: ``tidegate up`` and ``tidegate gateway``."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import openai
import pytest

from tests.harness import sim_workers
from tidegate.localproc import LocalWorker, free_port, wait_healthy


def tidegate(*args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tidegate", *args], text=True, **kwargs)


@pytest.mark.slow
def test_up_serves_then_stops_everything_on_ctrl_c():
    port = free_port()
    up = tidegate(
        "up",
        "--port",
        str(port),
        "--workers",
        "2",
        "--ttft-ms",
        "0",
        "--token-delay-ms",
        "0",
        stdout=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy([LocalWorker(base, up)], timeout_s=30, path="/readyz")
        with openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0) as client:
            reply = client.chat.completions.create(
                model="tidegate-sim", messages=[{"role": "user", "content": "hi"}], max_tokens=3
            )
            assert reply.usage.completion_tokens == 3
        workers = httpx.get(base + "/metrics").text
        worker_urls = set(re.findall(r'endpoint="(http://[^"]+)"', workers))
        assert len(worker_urls) == 2
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=30)
    assert up.returncode == 0
    assert f"{base}/v1" in out and "curl" in out
    for url in worker_urls:
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health")


def test_gateway_command_serves_in_front_of_given_workers():
    port = free_port()
    with sim_workers(1) as workers:
        gateway = tidegate(
            "gateway", "--port", str(port), "--workers", workers[0].url, stderr=subprocess.PIPE
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy([LocalWorker(base, gateway)], timeout_s=30, path="/readyz")
            models = httpx.get(base + "/v1/models").json()["data"]
            assert [m["id"] for m in models] == ["sim-model"]
        finally:
            gateway.terminate()
            _, err = gateway.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so supervisors see it.
    assert gateway.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "not-a-url"], "discovery.workers"),
        ([], "no workers"),
        (["--workers", "http://127.0.0.1:1", "--config", "/nonexistent.yaml"], "does not exist"),
    ],
)
def test_gateway_command_rejects_bad_settings_clearly(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "tidegate", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_unknown_command():
    result = subprocess.run(
        [sys.executable, "-m", "tidegate", "bogus"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "unknown command" in result.stderr
