import orjson
import pytest

from gateway.errors import InvalidRequest
from gateway.protocol import SseTap, Usage, inspect_request, usage_of_body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": []}', "model"),
        (b'{"model": ""}', "model"),
        (b'{"model": 3}', "model"),
        (b'{"model": "m", "stream": "yes"}', "stream"),
        (b'{"model": "m", "stream": true, "stream_options": 1}', "stream_options"),
    ],
)
def test_bad_requests_are_rejected(body, message):
    with pytest.raises(InvalidRequest, match=message):
        inspect_request(body)


def test_non_stream_bytes_pass_untouched():
    raw = b'{"model": "m",  "messages": [], "x_extra": {"kept": true}}'
    request = inspect_request(raw)
    assert (request.model, request.stream, request.usage_injected) == ("m", False, False)
    assert request.body is raw


def test_stream_that_asked_for_usage_passes_untouched():
    raw = b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}'
    request = inspect_request(raw)
    assert request.body is raw and not request.usage_injected


@pytest.mark.parametrize(
    "options", [None, {}, {"include_usage": False}, {"continuous_usage_stats": False}]
)
def test_stream_without_usage_gets_it_injected(options):
    payload = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    if options is not None:
        payload["stream_options"] = options
    request = inspect_request(orjson.dumps(payload))
    sent = orjson.loads(request.body)
    assert request.usage_injected and request.stream
    assert sent["stream_options"]["include_usage"] is True
    assert sent["messages"] == payload["messages"]
    for key, value in (options or {}).items():
        if key != "include_usage":
            assert sent["stream_options"][key] == value


@pytest.mark.parametrize(
    ("payload", "engine_priority", "sent_priority", "usage_injected"),
    [
        ({"model": "m", "messages": []}, -2, -2, False),
        ({"model": "m", "messages": [], "priority": 9}, -1, -1, False),  # the gateway's class wins
        ({"model": "m", "prompt": "x", "stream": True}, 0, 0, True),
        (
            {"model": "m", "stream": True, "stream_options": {"include_usage": True}},
            -2, -2, False,
        ),
        ({"model": "m", "messages": [], "priority": 9}, None, 9, False),  # off: untouched
    ],
)  # fmt: skip
def test_engine_priority_is_set_in_the_forwarded_body(
    payload, engine_priority, sent_priority, usage_injected
):
    request = inspect_request(orjson.dumps(payload), engine_priority=engine_priority)
    sent = orjson.loads(request.body)
    assert sent["priority"] == sent_priority
    assert request.usage_injected is usage_injected
    assert {k: v for k, v in sent.items() if k not in {"priority", "stream_options"}} == {
        k: v for k, v in payload.items() if k not in {"priority", "stream_options"}
    }


def test_without_engine_priority_the_bytes_are_the_clients():
    raw = b'{"model": "m",  "messages": [], "priority": 3}'
    assert inspect_request(raw, engine_priority=None).body is raw


def event(obj) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


TOKEN = event({"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]})
LAST = event({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
USAGE = event(
    {
        "id": "c",
        "choices": [],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
)
DONE = b"data: [DONE]\n\n"
WORKER_STREAM = TOKEN + LAST + USAGE + DONE


def replay(tap: SseTap, stream: bytes, cut: int) -> bytes:
    out = b""
    for i in range(0, len(stream), cut):
        ready, _ = tap.feed(stream[i : i + cut])
        out += ready
    return out + tap.flush()


@pytest.mark.parametrize("cut", [1, 3, 7, 64, 10_000])
def test_injected_usage_is_read_and_hidden_whatever_the_chunking(cut):
    tap = SseTap(strip_usage=True)
    assert replay(tap, WORKER_STREAM, cut) == TOKEN + LAST + DONE
    assert tap.usage == Usage(7, 2)


@pytest.mark.parametrize("cut", [1, 5, 10_000])
def test_requested_usage_is_read_and_forwarded(cut):
    tap = SseTap(strip_usage=False)
    assert replay(tap, WORKER_STREAM, cut) == WORKER_STREAM
    assert tap.usage == Usage(7, 2)


def test_events_are_counted_and_only_whole_events_forwarded():
    tap = SseTap(strip_usage=False)
    assert tap.feed(TOKEN[:10]) == (b"", 0)
    assert tap.feed(TOKEN[10:] + TOKEN) == (TOKEN + TOKEN, 2)


def test_content_that_mentions_usage_is_not_mistaken_for_it():
    tricky = event({"choices": [{"index": 0, "delta": {"content": '"usage":{'}}]})
    tap = SseTap(strip_usage=True)
    assert replay(tap, tricky + DONE, 4) == tricky + DONE
    assert tap.usage is None


def test_usage_of_body():
    assert usage_of_body(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 4}}') == Usage(3, 4)
    assert usage_of_body(b'{"usage": {"prompt_tokens": 3}}') == Usage(3, 0)  # embeddings
    assert usage_of_body(b'{"id": 1}') is None
    assert usage_of_body(b'{"usage": broken') is None


def test_routing_request_carries_prompt_blocks_and_session():
    messages = [{"role": "system", "content": "s" * 600}, {"role": "user", "content": "hi"}]
    a = inspect_request(
        orjson.dumps({"model": "m", "messages": messages, "user": "u1"}), block_chars=256
    )
    b = inspect_request(
        orjson.dumps(
            {"model": "m", "messages": [*messages[:1], {"role": "user", "content": "other"}]}
        ),
        block_chars=256,
        session="hdr",
    )
    assert len(a.routing.prefix_blocks) == 2 and a.routing.prefix_blocks == b.routing.prefix_blocks
    assert a.routing.session == "u1" and b.routing.session == "hdr"
    assert a.routing.prompt_tokens > 150


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"prompt": "abc"}, "abc"),
        ({"prompt": ["abc", "def"]}, "abc"),
        ({"input": "emb"}, "emb"),
        ({"prompt": [1, 2, 3]}, ""),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "x"}, {"type": "image_url"}],
                    }
                ]
            },
            "user\nx",
        ),
    ],
)
def test_prompt_text(payload, text):
    from gateway.protocol import prompt_text

    assert prompt_text(payload) == text
