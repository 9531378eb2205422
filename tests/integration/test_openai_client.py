"""The gateway over real HTTP, driven by the official openai client, in front of real
simulated worker processes."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.harness import MODEL, run_gateway, sim_workers


@pytest.fixture(scope="module")
def gateway():
    # Tokens 5 ms apart, so a stream's events reach the gateway in more than one read.
    with sim_workers(2, args=("--token-delay-ms", "5")) as workers, run_gateway(workers) as gw:
        gw.workers = workers  # type: ignore[attr-defined]
        yield gw


@pytest.fixture
def client(gateway):
    with openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0) as c:
        yield c


def test_models_lists_the_union_of_worker_models(client):
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_chat_non_stream(client, gateway):
    before = gateway.metric("tidegate_completion_tokens_total", {"model": MODEL})
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello there"}],
        max_tokens=5,
        extra_body={"ignore_eos": True},
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    after = gateway.metric("tidegate_completion_tokens_total", {"model": MODEL})
    assert after - before == 5


def test_chat_stream_with_usage_requested(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=7,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    text_chunks = [c for c in chunks if c.choices]
    assert text_chunks[-1].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7


def test_chat_stream_without_usage_still_accounts_it_but_hides_it(client, gateway):
    before = gateway.metric("tidegate_completion_tokens_total", {"model": MODEL})
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=6,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert gateway.metric("tidegate_completion_tokens_total", {"model": MODEL}) - before == 6


def test_completions_non_stream_and_stream(client):
    reply = client.completions.create(
        model=MODEL, prompt="Once upon", max_tokens=4, extra_body={"ignore_eos": True}
    )
    assert reply.object == "text_completion" and reply.usage.completion_tokens == 4
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt="Once upon",
            max_tokens=4,
            stream=True,
            extra_body={"ignore_eos": True},
        )
    )
    assert chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].text for c in chunks) == reply.choices[0].text


def test_embeddings(client):
    reply = client.embeddings.create(model=MODEL, input=["a b c", "d"])
    assert len(reply.data) == 2 and reply.usage.prompt_tokens > 0


def _events(raw: bytes) -> list[object]:
    """SSE events with the per-request fields (id, created) removed."""
    events: list[object] = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        assert block.startswith(b"data: ")
        data = block[6:]
        if data == b"[DONE]":
            events.append("[DONE]")
            continue
        obj = orjson.loads(data)
        obj.pop("id", None)
        obj.pop("created", None)
        events.append(obj)
    return events


@pytest.mark.parametrize(
    "stream_options",
    [None, {"include_usage": True}, {"include_usage": True, "continuous_usage_stats": True}],
)
def test_stream_is_exactly_what_the_worker_sends(gateway, stream_options):
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "x y"}],
        "max_tokens": 5,
        "stream": True,
        "ignore_eos": True,
    }
    if stream_options is not None:
        body["stream_options"] = stream_options
    direct = httpx.post(gateway.workers[0].url + "/v1/chat/completions", json=body)
    proxied = httpx.post(gateway.base_url + "/chat/completions", json=body)
    assert proxied.status_code == direct.status_code == 200
    assert proxied.headers["content-type"] == direct.headers["content-type"]
    assert _events(proxied.content) == _events(direct.content)


def test_gateway_metrics_cover_the_request_path(client, gateway):
    list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8, stream=True
        )
    )
    page = httpx.get(gateway.url + "/metrics").text
    for name in (
        "tidegate_requests_total",
        "tidegate_request_duration_seconds_bucket",
        "tidegate_time_to_first_token_seconds_bucket",
        "tidegate_inter_token_latency_seconds_bucket",
        "tidegate_prompt_tokens_total",
        "tidegate_completion_tokens_total",
        "tidegate_upstream_attempts_total",
        "tidegate_in_flight_requests",
        "tidegate_router_queue_depth_bucket",
    ):
        assert name in page, name
    assert (
        gateway.metric(
            "tidegate_requests_total", {"model": MODEL, "route": "chat", "status": "200"}
        )
        >= 1
    )
    assert gateway.metric("tidegate_time_to_first_token_seconds_count", {"model": MODEL}) >= 1
    # one observation per streamed request: what a per-request ITL target is judged on
    assert gateway.metric("tidegate_time_per_output_token_seconds_count", {"model": MODEL}) >= 1


def test_health_and_readiness(gateway):
    assert httpx.get(gateway.url + "/healthz").status_code == 200
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True}


def test_openai_client_sees_worker_errors_as_api_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
