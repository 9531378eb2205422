"""Request bodies to validated parameters, checked by hand for speed.

Only the fields the simulator honours are checked; everything else is ignored, as vLLM
ignores fields it does not know. Type checks are strict (a bool is not an int).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from workers.sim import tokens
from workers.sim.embeddings import token_ids_key
from workers.sim.errors import BadRequestError, ModelNotFoundError


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """What a chat or completions request asks of the engine and of the stream format."""

    model: str | None
    prompt_tokens: int
    max_tokens: int | None
    ignore_eos: bool
    stream: bool
    include_usage: bool
    continuous_usage: bool
    priority: int
    """vLLM's request ``priority`` (default 0; lower runs earlier under its priority policy)."""
    # What the prompt was made of, for the token ids behind prefix-cache hashes: the
    # chat messages, or the completions prompt (text or token ids).
    prompt: list[dict[str, Any]] | str | list[int] = ""

    def prompt_token_ids(self) -> list[int]:
        if isinstance(self.prompt, str) or _is_token_ids(self.prompt):
            return tokens.completion_token_ids(self.prompt)  # type: ignore[arg-type]
        return tokens.chat_token_ids(self.prompt)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class EmbeddingParams:
    model: str | None
    keys: list[str]  # one seed key per input
    prompt_tokens: list[int]
    encoding_format: Literal["float", "base64"]
    dimensions: int | None
    priority: int = 0


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"Invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object.")
    return body


def check_model(requested: str | None, served: str) -> None:
    """vLLM serves a request naming its model, or naming none at all."""
    if requested is not None and requested != served:
        raise ModelNotFoundError(requested)


def check_context(params: GenerationParams, max_model_len: int) -> None:
    """vLLM's length checks, with its messages."""
    n = params.prompt_tokens
    if n >= max_model_len:
        raise BadRequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"request has {n} input tokens. Please reduce the length of the input messages.",
            param="input_tokens",
        )
    m = params.max_tokens
    if m is not None and n + m > max_model_len:
        raise BadRequestError(
            f"'max_tokens' or 'max_completion_tokens' is too large: {m}. This model's "
            f"maximum context length is {max_model_len} tokens and your request has {n} "
            f"input tokens ({m} > {max_model_len} - {n}).",
            param="max_tokens",
        )


def parse_chat(body: dict[str, Any]) -> GenerationParams:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("'messages' must be a non-empty list.", param="messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequestError("Each message must be an object with a 'role'.", "messages")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequestError("Message 'content' must be a string or a list.", "messages")
    max_tokens = _opt_int(body, "max_completion_tokens") or _opt_int(body, "max_tokens")
    return _generation_params(body, tokens.count_chat_prompt(messages), max_tokens, messages)


def parse_completion(body: dict[str, Any]) -> GenerationParams:
    prompt = _single_prompt(body.get("prompt"))
    return _generation_params(
        body, tokens.count_completion_prompt(prompt), _opt_int(body, "max_tokens"), prompt
    )


def parse_embedding(body: dict[str, Any]) -> EmbeddingParams:
    raw = body.get("input")
    inputs: list[Any]
    if isinstance(raw, str) or _is_token_ids(raw):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, str) or _is_token_ids(x) for x in raw):
        inputs = raw
    else:
        raise BadRequestError(
            "'input' must be a string, a list of strings, a list of token ids, "
            "or a list of token id lists.",
            param="input",
        )
    keys = [x if isinstance(x, str) else token_ids_key(x) for x in inputs]
    counts = [tokens.count_completion_prompt(x) for x in inputs]
    encoding: Literal["float", "base64"]
    match body.get("encoding_format"):
        case None | "float":
            encoding = "float"
        case "base64":
            encoding = "base64"
        case _:
            raise BadRequestError(
                "'encoding_format' must be 'float' or 'base64'.", "encoding_format"
            )
    return EmbeddingParams(
        model=_opt_str(body, "model"),
        keys=keys,
        prompt_tokens=counts,
        encoding_format=encoding,
        dimensions=_opt_int(body, "dimensions"),
        priority=_opt_int(body, "priority") or 0,
    )


# -- helpers -----------------------------------------------------------------------------


def _generation_params(
    body: dict[str, Any],
    prompt_tokens: int,
    max_tokens: int | None,
    prompt: list[dict[str, Any]] | str | list[int],
) -> GenerationParams:
    if max_tokens is not None and max_tokens < 1:
        raise BadRequestError(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
    n = _opt_int(body, "n")
    if n is not None and n != 1:
        raise BadRequestError("Only n=1 is supported by this simulated worker.", param="n")
    _opt_str(body, "user")
    stream = _opt_bool(body, "stream") or False
    include_usage = continuous = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise BadRequestError("'stream_options' must be an object.", param="stream_options")
        if not stream:
            raise BadRequestError(
                "Stream options can only be defined when `stream=True`.", "stream_options"
            )
        # vLLM's StreamOptions.include_usage defaults to True once stream_options is given.
        include_usage = _opt_bool(options, "include_usage", "stream_options") is not False
        continuous = include_usage and bool(
            _opt_bool(options, "continuous_usage_stats", "stream_options")
        )
    return GenerationParams(
        model=_opt_str(body, "model"),
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        ignore_eos=_opt_bool(body, "ignore_eos") or False,
        stream=stream,
        include_usage=include_usage,
        continuous_usage=continuous,
        priority=_opt_int(body, "priority") or 0,
        prompt=prompt,
    )


def _single_prompt(raw: Any) -> str | list[int]:
    if isinstance(raw, list) and len(raw) == 1 and not _is_token_ids(raw):
        raw = raw[0]
    if isinstance(raw, str) or _is_token_ids(raw):
        return raw  # type: ignore[no-any-return]
    raise BadRequestError(
        "'prompt' must be one string or one list of token ids "
        "(batched prompts are not supported by this simulated worker).",
        param="prompt",
    )


def _is_token_ids(value: Any) -> bool:
    """A non-empty list of ints."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    )


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise BadRequestError(f"'{key}' must be an integer.", param=key)


def _opt_bool(body: dict[str, Any], key: str, param: str | None = None) -> bool | None:
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise BadRequestError(f"'{key}' must be a boolean.", param=param or key)


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise BadRequestError(f"'{key}' must be a string.", param=key)
