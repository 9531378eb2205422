"""What each simulated user sends: chat requests built from trace rows.

A user holds one conversation at a time. Each request is the conversation's next turn:
the history (a shared prefix the server can cache) plus a new user message. In ``trace``
session mode the whole prompt is made as long as the sampled row says, so prompt lengths
follow the trace exactly and a conversation goes on only while its history is shorter than
the next sample; in ``append`` mode the sampled length is the new message alone, so prompts
grow turn after turn (more prefix reuse, longer prompts than the trace). Rows that carry
``hash_ids`` become single prompts whose blocks share text exactly as the trace's do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from loadtests.prompts import (
    CHAT_REPLY_PRIMING_TOKENS,
    blocks_text,
    filler_text,
    message_tokens,
)
from loadtests.tracefile import TraceRow

SessionMode = Literal["trace", "append"]
PRIORITIES = ("critical", "standard", "sheddable")
"""Priority classes Tidegate's admission control knows (the ``x-priority`` header)."""


@dataclass(frozen=True, slots=True)
class Weighted:
    """Names with relative weights, e.g. ``model-a:3,model-b:1``."""

    items: tuple[tuple[str, float], ...]

    def pick(self, rng: random.Random) -> str:
        if len(self.items) == 1:
            return self.items[0][0]
        names, weights = zip(*self.items, strict=True)
        return str(rng.choices(names, weights)[0])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.items)


def parse_weighted(text: str, *, what: str, allowed: tuple[str, ...] | None = None) -> Weighted:
    """Parse ``name[:weight],...``; a missing weight is 1. Raises ``ValueError``."""
    items: list[tuple[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, weight_text = part.partition(":")
        name = name.strip()
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            raise ValueError(
                f"{what}: weight of {name!r} is not a number: {weight_text!r}"
            ) from None
        if not name or not weight > 0 or weight == float("inf"):
            raise ValueError(f"{what}: need name[:weight>0], got {part!r}")
        if allowed is not None and name not in allowed:
            raise ValueError(f"{what}: {name!r} is not one of {', '.join(allowed)}")
        if name in dict(items):
            raise ValueError(f"{what}: {name!r} given twice")
        items.append((name, weight))
    if not items:
        raise ValueError(f"{what}: empty")
    return Weighted(tuple(items))


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    models: Weighted
    priorities: Weighted | None = None
    stream_ratio: float = 1.0
    max_turns: int = 8
    session_mode: SessionMode = "trace"
    system_prompt_tokens: int = 0
    """A system prompt every conversation starts with (a prefix all sessions share)."""
    max_prompt_tokens: int | None = None
    """``append`` mode ends a conversation before its prompt would pass this."""
    ignore_eos: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.stream_ratio <= 1.0:
            raise ValueError(f"stream ratio must be in [0, 1], got {self.stream_ratio}")
        if self.max_turns < 1:
            raise ValueError(f"max turns must be at least 1, got {self.max_turns}")
        if self.system_prompt_tokens < 0:
            raise ValueError("system prompt tokens must be >= 0")


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """One request, ready to send: the body is already JSON bytes."""

    body: bytes
    headers: dict[str, str]
    stream: bool
    model: str
    prompt_tokens: int
    """What the prompt should count to on the server (chat template included)."""
    max_tokens: int


@dataclass(slots=True)
class Conversation:
    session_id: str
    model: str
    priority: str | None
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: int = CHAT_REPLY_PRIMING_TOKENS
    turns: int = 0
    closed: bool = False
    """No more turns (a one-shot block prompt, or a reply that never came)."""

    def add(self, role: str, content: str, content_tokens: int) -> None:
        self.messages.append({"role": role, "content": content})
        self.prompt_tokens += message_tokens(content_tokens)

    def add_reply(self, text: str, completion_tokens: int) -> None:
        """Append the assistant's answer, so the next turn resends it as history."""
        self.add("assistant", text, completion_tokens)


class TrafficPlanner:
    """Turns trace rows into requests; all randomness comes from the injected ``rng``."""

    def __init__(self, spec: TrafficSpec, rng: random.Random) -> None:
        self.spec = spec
        self._rng = rng
        self._system = filler_text(spec.system_prompt_tokens, seed=1 << 60)

    def plan(
        self, conversation: Conversation | None, row: TraceRow
    ) -> tuple[Conversation, RequestPlan]:
        """The next request for ``row``: a new turn of ``conversation`` when it can take
        one, else the first turn of a new conversation (returned either way)."""
        if row.hash_ids:
            conversation = self._new_conversation()
            content_tokens = self._first_turn_room(conversation, row.input_tokens)
            conversation.add("user", blocks_text(row.hash_ids, content_tokens), content_tokens)
            conversation.closed = True
        else:
            room = 0 if conversation is None else self._room(conversation, row.input_tokens)
            if conversation is None or room < 1:
                conversation = self._new_conversation()
                room = self._first_turn_room(conversation, row.input_tokens)
            text = filler_text(room, seed=self._rng.getrandbits(60))
            conversation.add("user", text, room)
        conversation.turns += 1
        return conversation, self._request(conversation, row.output_tokens)

    def _room(self, conversation: Conversation, input_tokens: int) -> int:
        """Content tokens of the next user message, or 0 when the conversation must end."""
        if conversation.closed or conversation.turns >= self.spec.max_turns:
            return 0
        if self.spec.session_mode == "append":
            limit = self.spec.max_prompt_tokens
            grown = conversation.prompt_tokens + message_tokens(input_tokens)
            return input_tokens if limit is None or grown <= limit else 0
        return max(0, input_tokens - conversation.prompt_tokens - message_tokens(0))

    def _first_turn_room(self, conversation: Conversation, input_tokens: int) -> int:
        # A row shorter than the template overhead still gets a one-token message.
        return max(1, input_tokens - conversation.prompt_tokens - message_tokens(0))

    def _new_conversation(self) -> Conversation:
        spec = self.spec
        conversation = Conversation(
            session_id=f"lt-{self._rng.getrandbits(64):016x}",
            model=spec.models.pick(self._rng),
            priority=spec.priorities.pick(self._rng) if spec.priorities else None,
        )
        if spec.system_prompt_tokens:
            conversation.add("system", self._system, spec.system_prompt_tokens)
        return conversation

    def _request(self, conversation: Conversation, max_tokens: int) -> RequestPlan:
        stream = self._rng.random() < self.spec.stream_ratio
        payload: dict[str, Any] = {
            "model": conversation.model,
            "messages": conversation.messages,
            "max_tokens": max_tokens,
            "stream": stream,
            "user": conversation.session_id,
        }
        if self.spec.ignore_eos:
            payload["ignore_eos"] = True
        if stream:
            payload["stream_options"] = {"include_usage": True}
        headers = {"Content-Type": "application/json", "x-session-id": conversation.session_id}
        if conversation.priority:
            headers["x-priority"] = conversation.priority
        return RequestPlan(
            body=orjson.dumps(payload),
            headers=headers,
            stream=stream,
            model=conversation.model,
            prompt_tokens=conversation.prompt_tokens,
            max_tokens=max_tokens,
        )
