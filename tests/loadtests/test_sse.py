"""Stream timing from SSE lines, on a clock the test controls."""

from __future__ import annotations

import orjson
import pytest

from loadtests.sse import StreamTimer


def event(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n"


def token(text: str) -> bytes:
    return event({"choices": [{"index": 0, "delta": {"content": text}}]})


ROLE = event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
USAGE = event({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}})
DONE = b"data: [DONE]\n"


def feed(lines: list[tuple[float, bytes]], start: float = 0.0, end: float | None = None):
    timer = StreamTimer(start)
    for now, line in lines:
        timer.feed(line, now)
    return timer.finish(end if end is not None else lines[-1][0])


def test_ttft_itl_and_usage_of_a_vllm_shaped_stream():
    result = feed(
        [
            (0.10, ROLE),  # vLLM's role-only first event is not a token
            (0.10, b"\n"),
            (0.15, token("The")),
            (0.25, token(" tide")),
            (0.45, token(" rises")),
            (0.46, USAGE),
            (0.47, DONE),
        ]
    )
    assert result.ttft_s == pytest.approx(0.15)
    assert result.gaps_s == pytest.approx([0.10, 0.20])
    assert result.mean_itl_s == pytest.approx(0.15)  # (0.45 - 0.15) / (3 - 1)
    assert (result.prompt_tokens, result.completion_tokens) == (12, 3)
    assert result.content == "The tide rises"
    assert result.done and result.error is None
    assert result.e2e_s == pytest.approx(0.47)


def test_mean_itl_divides_by_reported_tokens_when_events_carry_several():
    usage = event({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 5}})
    result = feed([(1.0, token("a b")), (1.4, token(" c d e")), (1.5, usage), (1.5, DONE)])
    assert result.mean_itl_s == pytest.approx(0.1)
    assert result.output_tokens == 5 and result.token_events == 2


def test_without_usage_token_events_are_counted():
    result = feed([(1.0, token("a")), (2.0, token("b")), (3.0, token("c")), (3.0, DONE)])
    assert result.completion_tokens is None and result.output_tokens == 3
    assert result.mean_itl_s == pytest.approx(1.0)


def test_one_token_has_no_inter_token_latency():
    result = feed([(0.2, token("a")), (0.3, DONE)])
    assert result.ttft_s == pytest.approx(0.2) and result.mean_itl_s is None


def test_continuous_usage_keeps_the_last():
    def with_usage(text: str, n: int) -> bytes:
        return event({"choices": [{"delta": {"content": text}}], "usage": {"completion_tokens": n}})

    result = feed([(1.0, with_usage("a", 1)), (2.0, with_usage("b", 2)), (2.0, DONE)])
    assert result.completion_tokens == 2


def test_reasoning_and_tool_call_deltas_are_tokens_but_not_text():
    reasoning = event({"choices": [{"delta": {"reasoning_content": "hmm"}}]})
    tool = event({"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]})
    result = feed([(0.5, reasoning), (0.6, tool), (0.7, token("x")), (0.8, DONE)])
    assert result.ttft_s == pytest.approx(0.5) and result.token_events == 3
    assert result.content == "x"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (event({"error": {"message": "worker failed", "code": 500}}), "worker failed"),
        (b"data: {not json\n", "malformed event"),
        (b"data: [1, 2]\n", "not a JSON object"),
    ],
)
def test_errors_inside_the_stream_are_reported(line, error):
    result = feed([(0.1, token("a")), (0.2, line), (0.3, DONE)])
    assert result.error is not None and error in result.error


def test_a_stream_cut_short_has_no_done():
    result = feed([(0.1, token("a")), (0.2, token("b"))], end=0.5)
    assert not result.done and result.e2e_s == pytest.approx(0.5)


def test_comments_and_other_fields_are_ignored():
    result = feed([(0.1, b": ping\n"), (0.1, b"event: message\n"), (0.2, token("a")), (0.2, DONE)])
    assert result.ttft_s == pytest.approx(0.2) and result.error is None
