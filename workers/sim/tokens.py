"""A deterministic stand-in for a tokenizer: counts prompt tokens and spells output.

Prompt tokens are words and single punctuation marks (a rough but stable proxy for BPE);
output token ``i`` is always the same word, so responses are reproducible and a
streamed answer concatenates to exactly the non-streamed one. A token's id is a CRC-32
of its text (stable across processes, unlike Python's salted ``hash`` of a str); chat
templates add fixed marker ids. ``*_token_ids`` and ``count_*`` always agree on length.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]")

# Extra tokens a chat template adds: per message (role markers) and for the reply header.
CHAT_TOKENS_PER_MESSAGE = 4
CHAT_REPLY_PRIMING_TOKENS = 3
# A completion prompt gets a beginning-of-sequence token, as most tokenizers add one.
BOS_TOKENS = 1
BOS_ID, START_ID, SEP_ID, END_ID = 1, 2, 3, 4  # special tokens: ids no word hashes to
_FIRST_WORD_ID = 16

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


def _word_id(word: str) -> int:
    return _FIRST_WORD_ID + zlib.crc32(word.encode())


def text_token_ids(text: str) -> list[int]:
    return [_word_id(token) for token in _TOKEN.findall(text)]


def completion_token_ids(prompt: str | list[int]) -> list[int]:
    """Token ids of a completions prompt (ids given by the client are kept)."""
    if isinstance(prompt, str):
        return [BOS_ID, *text_token_ids(prompt)]
    return list(prompt)


def chat_token_ids(messages: Iterable[Mapping[str, Any]]) -> list[int]:
    """Token ids of a chat prompt under the ChatML-like template ``count_chat_prompt``
    counts: ``<start> role <sep> content... <end>`` per message, then the reply header."""
    ids: list[int] = []
    for message in messages:
        ids += (START_ID, _word_id(str(message.get("role"))), SEP_ID)
        for text in _content_text(message.get("content")):
            ids += text_token_ids(text)
        ids.append(END_ID)
    ids += (START_ID, _word_id("assistant"), SEP_ID)
    return ids


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
