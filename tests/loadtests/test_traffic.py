"""Requests built from trace rows: lengths, conversations, mixes, headers."""

from __future__ import annotations

import random
from collections import Counter

import orjson
import pytest

from loadtests.tracefile import TraceRow
from loadtests.traffic import (
    Conversation,
    TrafficPlanner,
    TrafficSpec,
    Weighted,
    parse_weighted,
)
from workers.sim.tokens import count_chat_prompt, count_text_tokens

ONE_MODEL = Weighted((("m", 1.0),))


def planner(seed: int = 0, **spec: object) -> TrafficPlanner:
    return TrafficPlanner(TrafficSpec(models=ONE_MODEL, **spec), random.Random(seed))  # type: ignore[arg-type]


def row(inputs: int, outputs: int = 10, hash_ids: tuple[int, ...] = ()) -> TraceRow:
    return TraceRow(0.0, inputs, outputs, hash_ids)


def body(plan) -> dict:
    return orjson.loads(plan.body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", (("a", 1.0),)),
        ("a:3, b:1", (("a", 3.0), ("b", 1.0))),
        ("a:0.5,b", (("a", 0.5), ("b", 1.0))),
    ],
)
def test_weighted_lists_parse(text, expected):
    assert parse_weighted(text, what="--models").items == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a:x", "not a number"),
        ("a:0", "weight>0"),
        ("a:-1", "weight>0"),
        (":2", "weight>0"),
        ("a,a", "given twice"),
        ("urgent", "not one of"),
    ],
)
def test_bad_weighted_lists_name_the_option(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_weighted(text, what="--priorities", allowed=("critical", "standard", "a"))
    assert "--priorities" in str(info.value)


def test_picks_follow_the_weights():
    mix = parse_weighted("a:3,b:1", what="x")
    rng = random.Random(0)
    counts = Counter(mix.pick(rng) for _ in range(8000))
    assert counts["a"] / 8000 == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("inputs", [8, 100, 1000, 4000])
def test_a_first_turn_is_exactly_the_sampled_prompt_length(inputs):
    _, plan = planner().plan(None, row(inputs))
    assert plan.prompt_tokens == inputs
    assert count_chat_prompt(body(plan)["messages"]) == inputs


def test_a_row_shorter_than_the_template_still_gets_a_word():
    _, plan = planner().plan(None, row(2))
    assert count_chat_prompt(body(plan)["messages"]) == plan.prompt_tokens == 8


def test_the_request_asks_for_the_sampled_output_and_usage():
    _, plan = planner(stream_ratio=1.0).plan(None, row(100, outputs=37))
    sent = body(plan)
    assert sent["max_tokens"] == plan.max_tokens == 37
    assert sent["ignore_eos"] is True
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "m"


def test_no_ignore_eos_and_non_stream_requests():
    _, plan = planner(stream_ratio=0.0, ignore_eos=False).plan(None, row(100))
    sent = body(plan)
    assert "ignore_eos" not in sent and sent["stream"] is False and "stream_options" not in sent


def test_a_next_turn_resends_the_history_and_keeps_the_sampled_length():
    p = planner()
    conversation, first = p.plan(None, row(200, outputs=20))
    conversation.add_reply(" ".join(["word"] * 20), 20)
    again, second = p.plan(conversation, row(600))
    assert again is conversation and conversation.turns == 2
    first_messages, second_messages = body(first)["messages"], body(second)["messages"]
    assert second_messages[: len(first_messages)] == first_messages  # the shared prefix
    assert [m["role"] for m in second_messages] == ["user", "assistant", "user"]
    assert count_chat_prompt(second_messages) == second.prompt_tokens == 600
    headers = (first.headers["x-session-id"], second.headers["x-session-id"])
    assert headers[0] == headers[1] == body(second)["user"]


def test_a_sample_shorter_than_the_history_starts_a_new_conversation():
    p = planner()
    conversation, _ = p.plan(None, row(500))
    conversation.add_reply("a b c", 3)
    fresh, plan = p.plan(conversation, row(300))
    assert fresh is not conversation and fresh.turns == 1
    assert count_chat_prompt(body(plan)["messages"]) == 300
    assert plan.headers["x-session-id"] != conversation.session_id


def test_conversations_end_after_max_turns():
    p = planner(max_turns=2)
    conversation, _ = p.plan(None, row(100))
    conversation.add_reply("a", 1)
    conversation, _ = p.plan(conversation, row(200))
    conversation.add_reply("a", 1)
    third, _ = p.plan(conversation, row(300))
    assert third is not conversation


def test_append_mode_grows_the_prompt_by_each_sampled_length():
    p = planner(session_mode="append", max_prompt_tokens=1000)
    conversation, first = p.plan(None, row(100))
    conversation.add_reply("a b", 2)
    conversation, second = p.plan(conversation, row(300))
    new_message = body(second)["messages"][-1]["content"]
    assert count_text_tokens(new_message) == 300
    assert second.prompt_tokens == first.prompt_tokens + 6 + 304
    conversation.add_reply("a b", 2)
    fresh, _ = p.plan(conversation, row(600))  # would pass max_prompt_tokens
    assert fresh is not conversation


def test_a_system_prompt_is_shared_by_every_conversation():
    p = planner(system_prompt_tokens=50)
    _, a = p.plan(None, row(500))
    _, b = p.plan(None, row(500))
    first_a, first_b = body(a)["messages"][0], body(b)["messages"][0]
    assert first_a == first_b and first_a["role"] == "system"
    assert count_chat_prompt(body(a)["messages"]) == 500


def test_rows_with_blocks_are_one_shot_prompts_that_share_blocks():
    p = planner()
    conversation, a = p.plan(None, row(1024, hash_ids=(1, 2)))
    assert conversation.closed
    _, b = p.plan(conversation, row(1024, hash_ids=(1, 3)))
    text_a, text_b = (body(x)["messages"][0]["content"] for x in (a, b))
    assert text_a.split()[:500] == text_b.split()[:500] and text_a != text_b
    assert count_chat_prompt(body(a)["messages"]) == 1024


def test_priorities_and_models_are_chosen_per_conversation():
    spec = TrafficSpec(
        models=parse_weighted("a:1,b:1", what="m"),
        priorities=parse_weighted("critical:1,sheddable:1", what="p"),
    )
    p = TrafficPlanner(spec, random.Random(4))
    seen = set()
    for _ in range(40):
        conversation, plan = p.plan(None, row(100))
        assert body(plan)["model"] == conversation.model == plan.model
        assert plan.headers["x-priority"] == conversation.priority
        seen.add((conversation.model, conversation.priority))
    assert len(seen) == 4


def test_no_priority_header_unless_configured():
    _, plan = planner().plan(None, row(100))
    assert "x-priority" not in plan.headers


def test_stream_ratio_mixes_streams_and_plain_requests():
    p = planner(stream_ratio=0.25)
    streams = sum(p.plan(None, row(50))[1].stream for _ in range(4000))
    assert streams / 4000 == pytest.approx(0.25, abs=0.03)


def test_the_same_seed_gives_the_same_requests():
    def run(seed: int) -> list[bytes]:
        p = planner(seed)
        conversation: Conversation | None = None
        out = []
        for n in (100, 400, 50, 900):
            conversation, plan = p.plan(conversation, row(n))
            conversation.add_reply("x y", 2)
            out.append(plan.body)
        return out

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize(
    "bad",
    [{"stream_ratio": 1.5}, {"max_turns": 0}, {"system_prompt_tokens": -1}],
)
def test_an_impossible_spec_is_refused(bad):
    with pytest.raises(ValueError):
        TrafficSpec(models=ONE_MODEL, **bad)
