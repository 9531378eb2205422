"""A deterministic stand-in for a tokenizer: counts prompt tokens and spells output.

Prompt tokens are words and single punctuation marks (a rough but stable proxy for BPE);
output token ``i`` is always the same word, so responses are reproducible and a
streamed answer concatenates to exactly the non-streamed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]")

# Extra tokens a chat template adds: per message (role markers) and for the reply header.
CHAT_TOKENS_PER_MESSAGE = 4
CHAT_REPLY_PRIMING_TOKENS = 3
# A completion prompt gets a beginning-of-sequence token, as most tokenizers add one.
BOS_TOKENS = 1

_WORDS = (
    "the", "tide", "rises", "and", "falls", "with", "the", "moon", "while", "quiet",
    "harbours", "wait", "for", "ships", "that", "carry", "lanterns", "grain", "and",
    "letters", "across", "the", "grey", "water", "toward", "a", "distant", "shore",
    "where", "gulls", "circle", "old", "piers", "and", "the", "wind", "remembers",
    "every", "sail", "it", "has", "known",
)  # fmt: skip


def count_text_tokens(text: str) -> int:
    """Number of tokens in ``text`` (no special tokens)."""
    return len(_TOKEN.findall(text))


def count_completion_prompt(prompt: str | list[int]) -> int:
    """Tokens of a completions prompt: text gets a BOS token, token ids count as given."""
    if isinstance(prompt, str):
        return count_text_tokens(prompt) + BOS_TOKENS
    return len(prompt)


def _content_text(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                yield part["text"]


def count_chat_prompt(messages: Iterable[Mapping[str, Any]]) -> int:
    """Tokens of a chat prompt after a ChatML-like template is applied."""
    total = CHAT_REPLY_PRIMING_TOKENS
    for message in messages:
        total += CHAT_TOKENS_PER_MESSAGE
        for text in _content_text(message.get("content")):
            total += count_text_tokens(text)
    return total


_FIRST_PIECE = _WORDS[0].capitalize()
_LATER_PIECES = tuple(" " + word for word in _WORDS)


def output_token_text(index: int) -> str:
    """Text of output token ``index``: a word, with a leading space after the first."""
    if index == 0:
        return _FIRST_PIECE
    return _LATER_PIECES[index % len(_LATER_PIECES)]


def output_text(start: int, count: int) -> str:
    """Text of output tokens ``start .. start + count - 1``."""
    if count == 1:
        return output_token_text(start)
    return "".join([output_token_text(i) for i in range(start, start + count)])
