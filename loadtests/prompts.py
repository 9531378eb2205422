"""Deterministic prompt text of a given length in tokens.

Text is made of short common English words separated by spaces: each is one token in
common BPE tokenizers (with its leading space) and one token in Tidegate's simulated
worker, so ``n`` words are about ``n`` tokens everywhere. A seed picks the words, so two
prompts share a prefix only when the load test means them to (same session, same trace
block), never by accident.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

CHAT_TOKENS_PER_MESSAGE = 4
"""Tokens a ChatML-like template adds per message (role markers); vLLM-served chat models
and the simulated worker are close to this."""
CHAT_REPLY_PRIMING_TOKENS = 3
"""Tokens the template adds once, for the assistant reply header."""
TRACE_BLOCK_TOKENS = 512
"""Tokens per ``hash_ids`` block in the shared trace schema."""

WORDS = (
    "the", "tide", "moon", "sea", "ship", "port", "wind", "rain", "sun", "star",
    "day", "night", "road", "town", "hill", "tree", "bird", "fish", "boat", "rope",
    "salt", "sand", "rock", "wave", "shore", "light", "dark", "cold", "warm", "old",
    "new", "long", "small", "big", "red", "blue", "green", "gray", "white", "black",
    "one", "two", "three", "four", "five", "six", "ten", "many", "few", "all",
    "we", "you", "they", "she", "he", "it", "and", "or", "but", "so",
    "to", "from", "with", "for", "on", "in", "at", "by", "up", "down",
    "see", "hear", "make", "take", "give", "find", "keep", "read", "write", "sing",
    "home", "door", "room", "book", "song", "word", "name", "time", "year", "work",
)  # fmt: skip


def filler_text(n_tokens: int, seed: int) -> str:
    """About ``n_tokens`` tokens of text; the same seed and length give the same text, and
    a shorter text with the same seed is a prefix of a longer one."""
    if n_tokens <= 0:
        return ""
    rng = random.Random(seed)
    return " ".join(rng.choices(WORDS, k=n_tokens))


@functools.lru_cache(maxsize=4096)
def _block_words(block_id: int) -> tuple[str, ...]:
    # Offset from the range session seeds use, so a block never repeats a session's text.
    return tuple(random.Random((1 << 62) + block_id).choices(WORDS, k=TRACE_BLOCK_TOKENS))


def blocks_text(hash_ids: Sequence[int], n_tokens: int) -> str:
    """Text for a trace row with prompt blocks: block ``i`` is the same text wherever the
    same id appears, so rows that share leading ids share a real prompt prefix."""
    parts: list[str] = []
    remaining = n_tokens
    for block_id in hash_ids:
        if remaining <= 0:
            break
        take = min(TRACE_BLOCK_TOKENS, remaining)
        parts.append(" ".join(_block_words(block_id)[:take]))
        remaining -= take
    if remaining > 0:  # more tokens than blocks (a malformed row): pad deterministically
        parts.append(filler_text(remaining, seed=(1 << 61) + len(hash_ids)))
    return " ".join(parts)


def message_tokens(content_tokens: int) -> int:
    """Prompt tokens one chat message of ``content_tokens`` adds."""
    return CHAT_TOKENS_PER_MESSAGE + content_tokens
