"""The worker's HTTP surface through the ASGI app: vLLM's response and stream formats."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.workers.sim_helpers import MODEL, asgi_client, make_app, sse_payloads
from workers.sim.engine import GenerationRequest

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there, worker!"}]}
COMPLETION = {"model": MODEL, "prompt": "Once upon a time"}


def success_line(reason: str, count: float) -> str:
    labels = f'engine="0",finished_reason="{reason}",model_name="{MODEL}"'
    return f"vllm:request_success_total{{{labels}}} {count}"


def no_usage_anywhere(payloads: list[Any]) -> bool:
    return all("usage" not in p for p in payloads if isinstance(p, dict))


# -- non-streamed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "tokens", "reason"),
    [
        ({}, 5, "stop"),
        ({"max_tokens": 3}, 3, "length"),
        ({"max_completion_tokens": 2, "max_tokens": 4}, 2, "length"),
        ({"max_tokens": 9, "ignore_eos": True}, 9, "length"),
        ({"max_tokens": 9}, 5, "stop"),
        ({"n": 1, "user": "u1", "temperature": 0.2, "some_future_field": [1]}, 5, "stop"),
    ],
)
async def test_chat_completion(
    client: httpx.AsyncClient, extra: dict[str, Any], tokens: int, reason: str
) -> None:
    response = await client.post("/v1/chat/completions", json={**CHAT, **extra})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert (body["object"], body["model"]) == ("chat.completion", MODEL)
    assert isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == reason
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"].split()) == tokens
    usage = body["usage"]
    assert usage["completion_tokens"] == tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + tokens
    assert usage["prompt_tokens"] > 0


async def test_model_may_be_omitted(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={"messages": CHAT["messages"]})
    assert response.status_code == 200
    assert response.json()["model"] == MODEL


@pytest.mark.parametrize(
    ("prompt", "prompt_tokens"),
    [  # text gets a BOS token, token ids count as given
        ("Once upon a time", 5),
        (["Once upon a time"], 5),
        ([1, 2, 3, 4], 4),
        ([[1, 2, 3, 4]], 4),
    ],
)
async def test_completion(client: httpx.AsyncClient, prompt: Any, prompt_tokens: int) -> None:
    response = await client.post("/v1/completions", json={**COMPLETION, "prompt": prompt})
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("cmpl-")
    assert body["object"] == "text_completion"
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert len(choice["text"].split()) == 5
    assert body["usage"]["prompt_tokens"] == prompt_tokens


# -- streamed ----------------------------------------------------------------------------


async def test_chat_stream_event_sequence(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert len(chunks) == 1 + 5
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert chunks[0]["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    for chunk in chunks[1:-1]:
        (choice,) = chunk["choices"]
        assert choice["finish_reason"] is None
        assert set(choice["delta"]) == {"content"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert no_usage_anywhere(payloads)


async def test_chat_stream_opens_with_its_first_token_not_before() -> None:
    # vLLM sends the role chunk from its first engine output, after prefill: nothing of
    # the stream's body may come before the (injected, 200 ms) time to first token.
    app = make_app(ttft_ms=200.0)
    body = orjson.dumps({**CHAT, "stream": True, "max_tokens": 2})
    sent: list[tuple[float, dict[str, Any]]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append((time.monotonic(), message))

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    await app(scope, receive, send)
    started = next(t for t, m in sent if m["type"] == "http.response.start")
    first_body, first = next((t, m) for t, m in sent if m["type"] == "http.response.body")
    assert first_body - started >= 0.19
    assert b'"role":"assistant"' in first["body"]


async def test_stream_text_equals_non_streamed_text(client: httpx.AsyncClient) -> None:
    whole = (await client.post("/v1/chat/completions", json=CHAT)).json()
    streamed = sse_payloads(
        (await client.post("/v1/chat/completions", json={**CHAT, "stream": True})).text
    )
    text = "".join(c["choices"][0]["delta"]["content"] for c in streamed[:-1])
    assert text == whole["choices"][0]["message"]["content"]


@pytest.mark.parametrize("options", [{"include_usage": True}, {}])
async def test_chat_stream_usage_chunk_when_asked(
    client: httpx.AsyncClient, options: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={**CHAT, "stream": True, "stream_options": options, "max_tokens": 3},
    )
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    usage_chunk = payloads[-2]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == 3
    assert usage["total_tokens"] == usage["prompt_tokens"] + 3
    assert no_usage_anywhere(payloads[:-2])
    assert payloads[-3]["choices"][0]["finish_reason"] == "length"


async def test_stream_usage_off_when_include_usage_false(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={**CHAT, "stream": True, "stream_options": {"include_usage": False}},
    )
    assert no_usage_anywhere(sse_payloads(response.text))


async def test_continuous_usage_stats_on_every_chunk(client: httpx.AsyncClient) -> None:
    options = {"include_usage": True, "continuous_usage_stats": True}
    response = await client.post(
        "/v1/chat/completions", json={**CHAT, "stream": True, "stream_options": options}
    )
    chunks = sse_payloads(response.text)[:-1]
    assert [c["usage"]["completion_tokens"] for c in chunks] == [0, 1, 2, 3, 4, 5, 5]
    assert chunks[-1]["choices"] == []


async def test_completion_stream(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/completions",
        json={**COMPLETION, "stream": True, "max_tokens": 2, "stream_options": {}},
    )
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    first, second, usage_chunk = payloads[:-1]
    assert first["id"].startswith("cmpl-") and first["object"] == "text_completion"
    assert [first["choices"][0]["finish_reason"], second["choices"][0]["finish_reason"]] == [
        None,
        "length",
    ]
    assert first["choices"][0]["text"] + second["choices"][0]["text"] == "The tide"
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 2


# -- embeddings, models, health ----------------------------------------------------------


async def test_embeddings_are_deterministic_unit_vectors() -> None:
    async with asgi_client(make_app(embedding_dim=8)) as client:
        body = {"model": MODEL, "input": ["alpha", "beta", "alpha"]}
        first = (await client.post("/v1/embeddings", json=body)).json()
        again = (await client.post("/v1/embeddings", json=body)).json()
        b64 = (
            await client.post("/v1/embeddings", json={**body, "encoding_format": "base64"})
        ).json()
    assert first["object"] == "list" and first["id"].startswith("embd-")
    vectors = [d["embedding"] for d in first["data"]]
    assert [d["index"] for d in first["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in first["data"])
    assert all(len(v) == 8 and math.isclose(math.hypot(*v), 1.0) for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert vectors == [d["embedding"] for d in again["data"]]
    for item, vector in zip(b64["data"], vectors, strict=True):
        decoded = struct.unpack("<8f", base64.b64decode(item["embedding"]))
        assert decoded == pytest.approx(vector, rel=1e-6)
    usage = first["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] == 6


async def test_models(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    (card,) = body["data"]
    assert (card["id"], card["object"], card["owned_by"], card["root"]) == (
        MODEL,
        "model",
        "vllm",
        MODEL,
    )
    assert card["parent"] is None and card["max_model_len"] == 8192
    assert card["permission"][0]["object"] == "model_permission"


async def test_health_and_version(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert (health.status_code, health.content) == (200, b"")
    assert (await client.get("/version")).json()["version"].startswith("0.32")


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {**CHAT, "model": "nope"}),
        ("/v1/completions", {**COMPLETION, "model": "nope"}),
        ("/v1/embeddings", {"model": "nope", "input": "x"}),
    ],
)
async def test_unknown_model_is_404(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "The model `nope` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/v1/chat/completions", b"{not json"),
        ("/v1/chat/completions", b"[1, 2]"),
        ("/v1/chat/completions", b'{"model": "sim-model"}'),
        ("/v1/chat/completions", b'{"messages": [{"content": "no role"}]}'),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "n": 2}'),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "max_tokens": "9"}'),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "max_tokens": 0}'),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "stream": "yes"}'),
        ("/v1/chat/completions", b'{"messages": [{"role": "user"}], "stream_options": {}}'),
        ("/v1/completions", b'{"prompt": ["one", "two"]}'),
        ("/v1/completions", b'{"prompt": []}'),
        ("/v1/completions", b'{"prompt": 42}'),
        ("/v1/completions", b'{"prompt": "x", "max_tokens": 8192}'),
        ("/v1/embeddings", b'{"input": []}'),
        ("/v1/embeddings", b'{"input": "x", "encoding_format": "int8"}'),
        ("/v1/embeddings", b'{"input": "x", "dimensions": 4}'),
    ],
)
async def test_bad_requests_are_400(client: httpx.AsyncClient, path: str, content: bytes) -> None:
    response = await client.post(path, content=content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("BadRequestError", 400)
    assert isinstance(error["message"], str) and error["message"]


async def test_prompt_longer_than_context_is_400() -> None:
    async with asgi_client(make_app(max_model_len=16)) as client:
        long_prompt = "word " * 20
        response = await client.post("/v1/completions", json={"prompt": long_prompt})
        assert response.status_code == 400
        assert "maximum context length is 16 tokens" in response.json()["error"]["message"]
        embed = await client.post("/v1/embeddings", json={"input": long_prompt})
        assert embed.status_code == 400


async def test_default_output_is_capped_by_remaining_context() -> None:
    async with asgi_client(make_app(max_model_len=12, output_tokens=64)) as client:
        response = await client.post("/v1/completions", json={"prompt": "a b c d"})
    body = response.json()
    assert body["usage"]["completion_tokens"] == 12 - 5
    assert body["choices"][0]["finish_reason"] == "length"


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/nothing")).status_code == 404
    assert (await client.get("/v1/chat/completions")).status_code == 405


# -- metrics -----------------------------------------------------------------------------


async def test_metrics_names_labels_and_live_gauges() -> None:
    app = make_app(max_num_seqs=2, output_tokens=3)
    async with asgi_client(app) as client:
        await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2})
        await client.post("/v1/chat/completions", json=CHAT)
        engine = app.services.engine
        held = [engine.submit(GenerationRequest(f"h{i}", prompt_tokens=4)) for i in range(3)]
        text = (await client.get("/metrics")).text
        labels = f'engine="0",model_name="{MODEL}"'
        assert f"vllm:num_requests_running{{{labels}}} 2.0" in text
        assert f"vllm:num_requests_waiting{{{labels}}} 1.0" in text
        assert f"vllm:kv_cache_usage_perc{{{labels}}} 1.0" in text
        assert f"vllm:generation_tokens_total{{{labels}}} 5.0" in text
        assert success_line("length", 1.0) in text
        assert success_line("stop", 1.0) in text
        for name in (
            "vllm:prompt_tokens_total",
            "vllm:num_preemptions_total",
            "vllm:prefix_cache_queries_total",
            "vllm:prefix_cache_hits_total",
            "vllm:time_to_first_token_seconds_bucket",
            "vllm:inter_token_latency_seconds_count",
            "vllm:e2e_request_latency_seconds_sum",
            "vllm:request_queue_time_seconds_bucket",
        ):
            assert f"\n{name}{{" in text, name
        for stream in held:
            stream.abort()
        text = (await client.get("/metrics")).text
        assert f"vllm:num_requests_running{{{labels}}} 0.0" in text
        assert success_line("abort", 3.0) in text
