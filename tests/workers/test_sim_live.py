"""The worker on a real loopback socket: disconnects, and the ``tidegate sim-worker``
command driven by the official OpenAI client."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.workers.sim_helpers import MODEL, make_app, serving
from workers.sim.cli import main, parse_settings
from workers.sim.engine import GenerationRequest

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a story."}]}


async def eventually(condition: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_closing_a_stream_aborts_the_request_at_once() -> None:
    app = make_app(token_delay_ms=20, output_tokens=1000)
    engine, stats = app.services.engine, app.services.stats
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        body = {**CHAT, "stream": True}
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            seen = 0
            async for line in response.aiter_lines():
                seen += line.startswith("data: ")
                if seen == 3:
                    break
            assert engine.snapshot().num_running == 1
        started = time.monotonic()
        await eventually(lambda: engine.snapshot().num_running == 0, within_s=1.0)
        assert time.monotonic() - started < 1.0
        assert stats.finished["abort"] == 1
        metrics = (await client.get("/metrics")).text
        assert f'vllm:num_requests_running{{engine="0",model_name="{MODEL}"}} 0.0' in metrics


async def test_leaving_while_queued_frees_the_queue_place() -> None:
    app = make_app(max_num_seqs=1, ttft_ms=10_000)
    engine = app.services.engine
    holder = engine.submit(GenerationRequest("holder", prompt_tokens=4))
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        pending = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        await eventually(lambda: engine.snapshot().num_waiting == 1, within_s=5.0)
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        await eventually(lambda: engine.snapshot().num_waiting == 0, within_s=1.0)
        assert engine.snapshot().num_running == 1
    holder.abort()
    assert app.services.stats.finished["abort"] == 2


async def test_concurrent_streams_all_complete() -> None:
    app = make_app(output_tokens=16, max_num_seqs=4)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:

        async def one() -> int:
            response = await client.post("/v1/completions", json={"prompt": "x", "stream": True})
            return response.text.count("data: ")

        counts = await asyncio.gather(*(one() for _ in range(32)))
    assert counts == [16 + 1] * 32
    assert app.services.stats.finished["stop"] == 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        assert proc.poll() is None, proc.communicate()[1].decode()
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "worker did not become healthy"
        time.sleep(0.05)


def test_sim_worker_command_serves_the_openai_client() -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "tidegate", "sim-worker", "--port", str(port)]
    command += ["--model", MODEL, "--output-tokens", "6", "--token-delay-ms", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_healthy(url, proc, within_s=20.0)
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            chat = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
            assert chat.choices[0].finish_reason == "length"
            assert chat.usage is not None and chat.usage.completion_tokens == 4

            chunks = list(
                client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert len(text.split()) == 6
            assert chunks[-1].choices == [] and chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens == 6
            assert chunks[-2].choices[0].finish_reason == "stop"

            completion = client.completions.create(model=MODEL, prompt="Once", max_tokens=2)
            assert completion.choices[0].finish_reason == "length"

            embedded = client.embeddings.create(model=MODEL, input=["a", "b"])
            assert [len(d.embedding) for d in embedded.data] == [16, 16]

            assert [m.id for m in client.models.list()] == [MODEL]

            with pytest.raises(openai.NotFoundError):
                client.completions.create(model="other", prompt="x")
    finally:
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=15)
        proc.stdout and proc.stdout.close()
        proc.stderr and proc.stderr.close()
    assert returncode == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "8001"],  # no model
        ["--port", "8001", "--model", "m", "--max-num-seqs", "0"],
        ["--port", "8001", "--model", "m", "--ttft-ms", "-5"],
        ["--port", "70000", "--model", "m"],
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: tidegate sim-worker" in capsys.readouterr().err


def test_cli_parses_every_flag() -> None:
    settings = parse_settings(
        shlex.split(
            "--port 9000 --model m --host 0.0.0.0 --ttft-ms 5 --token-delay-ms 2.5 "
            "--max-num-seqs 8 --output-tokens 32 --max-model-len 4096 --embedding-dim 4 "
            "--drain-grace-s 7"
        )
    )
    assert settings.model_dump() == {
        "model": "m",
        "host": "0.0.0.0",
        "port": 9000,
        "ttft_ms": 5.0,
        "token_delay_ms": 2.5,
        "max_num_seqs": 8,
        "output_tokens": 32,
        "max_model_len": 4096,
        "embedding_dim": 4,
        "profile": None,
        "profile_file": None,
        "max_num_batched_tokens": 8192,
        "block_size": 16,
        "num_gpu_blocks": None,
        "gpu_memory_utilization": 0.9,
        "enable_prefix_caching": True,
        "scheduling_policy": "fcfs",
        "drain_grace_s": 7.0,
    }


def test_cli_parses_the_batching_model_flags() -> None:
    settings = parse_settings(
        shlex.split(
            "--port 9000 --model m --profile llama3-8b-a100 --max-num-batched-tokens 512 "
            "--block-size 32 --num-gpu-blocks-override 900 --gpu-memory-utilization 0.8 "
            "--no-enable-prefix-caching --scheduling-policy priority"
        )
    )
    config = settings.engine_config()
    assert (settings.profile, config.max_num_batched_tokens, config.block_size) == (
        "llama3-8b-a100",
        512,
        32,
    )
    assert (config.num_gpu_blocks, config.gpu_memory_utilization) == (900, 0.8)
    assert config.enable_prefix_caching is False
    assert config.scheduling_policy == "priority"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--profile", "llama3-8b-tpu"], "unknown profile 'llama3-8b-tpu'"),
        (["--profile", "llama3-8b-h100", "--ttft-ms", "5"], "fixed-delay engine only"),
        (["--profile", "llama3-8b-h100", "--num-gpu-blocks-override", "10"], "cannot hold"),
        (["--profile", "cpu-tiny", "--profile-file", "/nonexistent.yaml"], "nonexistent"),
    ],
)
def test_cli_rejects_bad_profiles(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(["--port", "8001", "--model", "m", *argv])
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err
