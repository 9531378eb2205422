"""``make up``'s command with real vLLM: one worker, the tiny model, Ctrl-C stops it all."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import openai
import pytest

from tests.e2e.fleet import MODEL, ROOT
from tests.vllm.engine_stack import requires_engine
from tidegate.localproc import LocalWorker, free_port, wait_healthy

pytestmark = [pytest.mark.vllm, pytest.mark.slow, requires_engine]


def test_up_with_vllm_serves_the_tiny_model_then_stops_on_ctrl_c() -> None:
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "tidegate", "up", "--engine", "vllm", "--workers", "1",
         "--port", str(port), "--kv-cache", "256Mi"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    workers: set[str] = set()
    try:
        wait_healthy([LocalWorker(base, up)], timeout_s=300, path="/readyz")
        with openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0) as client:
            reply = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Hello!"}],
                max_tokens=4,
                extra_body={"ignore_eos": True},
            )
        assert reply.usage is not None and reply.usage.completion_tokens == 4
        workers = set(re.findall(r'endpoint="(http://[^"]+)"', httpx.get(base + "/metrics").text))
        assert len(workers) == 1
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0
    assert f"{base}/v1" in out and MODEL in out
    for url in workers:
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health")
