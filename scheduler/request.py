"""What routing knows about a request, and how a prompt becomes prefix blocks.

Prompts are cut into fixed-size blocks and each block is named by a hash chained over
everything before it, like vLLM's prefix cache: two prompts share their first *k* block
hashes exactly when they share those *k* blocks of prefix. The hash (CRC-32, continued
across blocks) is the same in every process, so gateway replicas agree on it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

CHARS_PER_TOKEN = 4
"""Rough characters per token for English text; the gateway runs no tokenizer."""


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    model: str
    prefix_blocks: tuple[int, ...] = ()
    """Chained hashes of the prompt's full blocks, first block first."""
    session: str | None = None
    """A session key (header or the OpenAI ``user`` field) for session affinity."""
    prompt_tokens: int = 0
    """Prompt length in tokens (estimated from characters when not known)."""
    priority: int = 0
    tenant: str = ""


def prefix_blocks(text: str | bytes, block_chars: int) -> tuple[int, ...]:
    """Chained CRC-32 of each full ``block_chars``-sized block of ``text``."""
    data = text.encode() if isinstance(text, str) else text
    hashes: list[int] = []
    running = 0
    for start in range(0, len(data) - block_chars + 1, block_chars):
        running = zlib.crc32(data[start : start + block_chars], running)
        hashes.append(running)
    return tuple(hashes)
