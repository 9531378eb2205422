"""Timing an OpenAI chat stream from its SSE lines: TTFT, inter-token latency, usage.

Fed one line at a time with the time it arrived (the clock is the caller's), so it is
tested without a network. A token is an event whose delta carries text (content,
reasoning or a tool call); vLLM's first role-only event and the final usage-only event
are not tokens. TTFT is the first token's arrival. The request's inter-token latency is
(last token - first token) / (completion tokens - 1), the definition llmperf and GuideLLM
use, with the completion tokens the server reports in ``usage``; the gaps between token
events are kept as well, for per-token percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

_DATA = b"data:"
_DONE = b"[DONE]"


@dataclass(slots=True)
class StreamResult:
    e2e_s: float
    ttft_s: float | None
    mean_itl_s: float | None
    gaps_s: list[float]
    """Time between consecutive token events (one per event, not per token)."""
    token_events: int
    prompt_tokens: int | None
    completion_tokens: int | None
    """As the server reports them (``usage``); None when it sent no usage."""
    content: str
    done: bool
    """The stream ended with ``[DONE]``."""
    error: str | None
    """An error event inside the stream, or a malformed event."""

    @property
    def output_tokens(self) -> int:
        """Reported completion tokens, else the count of token events."""
        return self.completion_tokens if self.completion_tokens is not None else self.token_events


@dataclass(slots=True)
class StreamTimer:
    start: float
    _first: float | None = None
    _last: float | None = None
    _gaps: list[float] = field(default_factory=list)
    _events: int = 0
    _parts: list[str] = field(default_factory=list)
    _usage: dict[str, Any] | None = None
    _done: bool = False
    _error: str | None = None

    def feed(self, line: bytes, now: float) -> None:
        """One line of the stream (with or without its line ending)."""
        line = line.strip()
        if not line.startswith(_DATA):
            return  # blank separators, comments (":"), event names, ids
        data = line[len(_DATA) :].strip()
        if data == _DONE:
            self._done = True
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._error = self._error or f"malformed event: {data[:80]!r}"
            return
        if not isinstance(event, dict):
            self._error = self._error or "event is not a JSON object"
            return
        if "error" in event:
            self._error = self._error or _error_message(event["error"])
            return
        usage = event.get("usage")
        if isinstance(usage, dict):
            self._usage = usage  # with continuous usage every event has one: keep the last
        text = _delta_text(event.get("choices"))
        if text is None:
            return
        self._parts.append(text)
        self._events += 1
        if self._first is None:
            self._first = now
        elif self._last is not None:
            self._gaps.append(now - self._last)
        self._last = now

    def finish(self, now: float) -> StreamResult:
        usage = self._usage or {}
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        completion = completion if isinstance(completion, int) else None
        tokens = completion if completion is not None else self._events
        mean_itl = None
        if self._first is not None and self._last is not None and tokens > 1:
            mean_itl = (self._last - self._first) / (tokens - 1)
        return StreamResult(
            e2e_s=now - self.start,
            ttft_s=None if self._first is None else self._first - self.start,
            mean_itl_s=mean_itl,
            gaps_s=self._gaps,
            token_events=self._events,
            prompt_tokens=prompt if isinstance(prompt, int) else None,
            completion_tokens=completion,
            content="".join(self._parts),
            done=self._done,
            error=self._error,
        )


def _delta_text(choices: Any) -> str | None:
    """The text a chunk adds, or None when it adds none (role-only, usage-only)."""
    if not isinstance(choices, list) or not choices:
        return None
    choice = choices[0]
    if not isinstance(choice, dict):
        return None
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return None
    content = delta.get("content")
    if isinstance(content, str) and content:
        return content
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        return ""  # a token the user waits for, but not part of the answer's text
    if delta.get("tool_calls"):
        return ""
    return None


def _error_message(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)[:200]
