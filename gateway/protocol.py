"""The little of the OpenAI protocol the proxy path must understand.

The gateway forwards the client's bytes; it reads only the model, the stream flag and the
stream options from a request, and only the usage from a response. It re-serialises a body
only to ask a stream for its usage, or to set the engine priority when that is enabled
(``upstream.engine_priority``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import InvalidRequest
from scheduler.request import CHARS_PER_TOKEN, RoutingRequest, prefix_blocks

ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    model: str
    stream: bool
    body: bytes
    """What to send upstream: the client's bytes, unless usage had to be asked for or an
    engine priority set."""
    usage_injected: bool
    """The gateway asked the worker for stream usage the client did not want to see."""
    routing: RoutingRequest


def inspect_request(
    raw: bytes,
    *,
    block_chars: int = 256,
    session: str | None = None,
    engine_priority: int | None = None,
) -> ProxyRequest:
    """Parse the body once; ``session`` is the session header, if the client sent one.

    With ``engine_priority``, the forwarded body's ``priority`` is set to it, replacing any
    the client sent: the request's class is the gateway's to decide (its header), and the
    engine's order must agree with the gate's."""
    payload = _parse(raw)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("You must provide a model parameter.", param="model")
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream")
    text = prompt_text(payload)
    user = payload.get("user")
    routing = RoutingRequest(
        model=model,
        prefix_blocks=prefix_blocks(text, block_chars),
        session=session or (user if isinstance(user, str) and user else None),
        prompt_tokens=len(text) // CHARS_PER_TOKEN,
    )
    inject_usage = False
    if stream:
        options = payload.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
        if not (options and options.get("include_usage") is True):
            payload["stream_options"] = {**(options or {}), "include_usage": True}
            inject_usage = True
    if engine_priority is not None:
        payload["priority"] = engine_priority
    elif not inject_usage:
        return ProxyRequest(model, bool(stream), raw, False, routing)
    return ProxyRequest(model, bool(stream), orjson.dumps(payload), inject_usage, routing)


def prompt_text(payload: dict[str, Any]) -> str:
    """The prompt as text, for prefix hashing: chat messages in order, or the prompt/input."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        parts: list[str] = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            parts.append(str(message.get("role", "")))
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(
                    p["text"]
                    for p in content
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
        return "\n".join(parts)
    prompt = payload.get("prompt", payload.get("input"))
    if isinstance(prompt, list) and prompt:
        prompt = prompt[0]
    return prompt if isinstance(prompt, str) else ""


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return payload


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


def usage_of(obj: Any) -> Usage | None:
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion or 0)


def usage_of_body(body: bytes) -> Usage | None:
    if b'"usage"' not in body:
        return None
    try:
        return usage_of(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


class SseTap:
    """Cuts a worker's SSE bytes at event boundaries and notes the usage they report.

    Whole events are forwarded byte for byte. When the gateway injected
    ``include_usage``, the usage-only event (``"choices": []``) is kept from the client,
    who then sees exactly what the worker would have sent it.
    """

    __slots__ = ("_pending", "_strip_usage", "usage")

    def __init__(self, *, strip_usage: bool) -> None:
        self._pending = b""
        self._strip_usage = strip_usage
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> tuple[bytes, int]:
        """Return the whole events now complete and how many there are."""
        data = self._pending + chunk if self._pending else chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._pending = data
            return b"", 0
        end += 2
        ready, self._pending = data[:end], data[end:]
        events = ready.count(b"\n\n")
        at = ready.rfind(b'"usage":{')
        if at >= 0:
            ready, events = self._take_usage(ready, at, events)
        return ready, events

    def flush(self) -> bytes:
        """Whatever trails the last whole event (a worker that ended mid-event)."""
        rest, self._pending = self._pending, b""
        return rest

    def _take_usage(self, ready: bytes, at: int, events: int) -> tuple[bytes, int]:
        start = ready.rfind(b"\n\n", 0, at)
        start = 0 if start < 0 else start + 2
        end = ready.find(b"\n\n", at) + 2
        event = ready[start:end]
        data_at = event.find(b"data:")
        if data_at < 0:
            return ready, events
        try:
            obj = orjson.loads(event[data_at + 5 :])
        except orjson.JSONDecodeError:
            return ready, events
        usage = usage_of(obj)
        if usage is not None:
            self.usage = usage
        if self._strip_usage and isinstance(obj, dict) and obj.get("choices") == []:
            return ready[:start] + ready[end:], events - 1
        return ready, events
