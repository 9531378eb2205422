"""Builders of vLLM-shaped response bodies and SSE events, as plain dicts and bytes.

Field sets and order follow vLLM's pydantic models as it serialises them: full dumps
(nulls included) for non-streamed responses, ``exclude_unset`` for stream chunks, and
``exclude_none`` for the trailing usage chunk. No validation happens here: the hot path
only builds dicts and hands them to orjson.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

# What GET /version reports: the vLLM release this worker imitates, marked as simulated.
VLLM_VERSION = "0.32.0+sim"

SSE_DONE = b"data: [DONE]\n\n"

_SLOT = "\x00"  # a text no id or model name contains; JSON-encoded as "\u0000"
_SLOT_JSON = orjson.dumps(_SLOT)


def random_id(prefix: str) -> str:
    """``chatcmpl-…``/``cmpl-…``/``embd-…`` ids with 32 random hex digits, like vLLM's."""
    return prefix + os.urandom(16).hex()


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """A stream usage object (vLLM omits unset fields there)."""
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }


def full_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The usage object of a non-streamed response."""
    return {**usage(prompt_tokens, completion_tokens), "prompt_tokens_details": None}


# -- chat completions ----------------------------------------------------------------


def chat_response(
    *,
    request_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": [],
        "reasoning_content": None,
    }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": full_usage(prompt_tokens, completion_tokens),
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }


def completion_response(
    *,
    request_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    choice = {
        "index": 0,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
        "prompt_logprobs": None,
    }
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": full_usage(prompt_tokens, completion_tokens),
        "kv_transfer_params": None,
    }


class StreamFormatter:
    """The SSE events of one streamed chat or completions response.

    Chat opens with a role chunk; both then send one chunk per token delta (the last one
    carrying ``finish_reason``) and, when usage was asked for, a final ``choices: []``
    chunk with the totals. With continuous usage every chunk carries running totals.
    """

    __slots__ = ("_chat", "_continuous", "_frame", "_head", "_prompt_tokens", "include_usage")

    def __init__(
        self,
        *,
        chat: bool,
        request_id: str,
        created: int,
        model: str,
        prompt_tokens: int,
        include_usage: bool,
        continuous_usage: bool,
    ) -> None:
        self._chat = chat
        self._head: dict[str, Any] = {
            "id": request_id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": model,
        }
        self._prompt_tokens = prompt_tokens
        self.include_usage = include_usage
        self._continuous = continuous_usage
        # Mid-stream token chunks differ only in their text: render one with a placeholder
        # and keep the bytes around it, so each token costs one small orjson call.
        self._frame: tuple[bytes, bytes] | None = None
        if not continuous_usage:
            rendered = self._build_delta(_SLOT, None, 0)
            if rendered.count(_SLOT_JSON) == 1:
                head, _, tail = rendered.partition(_SLOT_JSON)
                self._frame = (head, tail)

    def opening(self) -> bytes | None:
        """The event sent before any token (chat's role announcement), if any."""
        if not self._chat:
            return None
        choice = {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
        return self._event(choice, 0)

    def delta(self, text: str, finish_reason: str | None, completion_tokens: int) -> bytes:
        """A chunk with new output text; ``completion_tokens`` is the running total."""
        if finish_reason is None and self._frame is not None:
            return self._frame[0] + orjson.dumps(text) + self._frame[1]
        return self._build_delta(text, finish_reason, completion_tokens)

    def _build_delta(self, text: str, finish_reason: str | None, completion_tokens: int) -> bytes:
        choice: dict[str, Any]
        if self._chat:
            choice = {"index": 0, "delta": {"content": text}, "logprobs": None}
        else:
            choice = {"index": 0, "text": text, "logprobs": None}
        choice["finish_reason"] = finish_reason
        if finish_reason is not None or not self._chat:
            choice["stop_reason"] = None
        return self._event(choice, completion_tokens)

    def usage_event(self, completion_tokens: int) -> bytes:
        payload: dict[str, Any] = {
            **self._head,
            "choices": [],
            "usage": usage(self._prompt_tokens, completion_tokens),
        }
        return sse(payload)

    def _event(self, choice: dict[str, Any], completion_tokens: int) -> bytes:
        payload: dict[str, Any] = {**self._head, "choices": [choice]}
        if self._continuous:
            payload["usage"] = usage(self._prompt_tokens, completion_tokens)
        return sse(payload)


# -- models, embeddings -----------------------------------------------------------------


def model_list(*, model: str, max_model_len: int, created: int) -> dict[str, Any]:
    permission = {
        "id": random_id("modelperm-"),
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    card = {
        "id": model,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": model,
        "parent": None,
        "max_model_len": max_model_len,
        "permission": [permission],
    }
    return {"object": "list", "data": [card]}


def embedding_response(
    *,
    request_id: str,
    created: int,
    model: str,
    embeddings: list[list[float]] | list[str],
    prompt_tokens: int,
) -> dict[str, Any]:
    data = [
        {"index": i, "object": "embedding", "embedding": vector}
        for i, vector in enumerate(embeddings)
    ]
    return {
        "id": request_id,
        "object": "list",
        "created": created,
        "model": model,
        "data": data,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens,
            "completion_tokens": 0,
            "prompt_tokens_details": None,
        },
    }
