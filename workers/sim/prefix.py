"""Block hashes that identify a prompt's KV blocks, for prefix caching.

Like vLLM, a prompt is cut into blocks of ``block_size`` tokens and only full blocks are
hashed; each block's hash covers its own tokens and its parent's hash, so equal hashes
mean equal prefixes. Hashes here are Python's hash of tuples of ints, which is not salted
per process (only str and bytes hashing is), so the same prompt gives the same hashes in
every worker and every replay.

Trace replay passes prefix ids instead of tokens: the Mooncake trace names each
512-token prompt block with an id that stands for the whole prefix up to it. An engine
block then maps deterministically to (id of the trace block holding its last token,
offset of that token), so engine blocks of any size share exactly when the covered
prefix is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

ROOT_HASH = 0x7ABE_5EED  # the parent of a prompt's first block
_TRACE_TAG = 0x7ACE_0000_0000_0512

TRACE_BLOCK_TOKENS = 512  # tokens per id in the Mooncake trace's hash_ids


def chain_block_hashes(token_ids: Sequence[int], block_size: int) -> tuple[int, ...]:
    """Chained hashes of the full ``block_size`` blocks of ``token_ids``."""
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    hashes: list[int] = []
    parent = ROOT_HASH
    for end in range(block_size, len(token_ids) + 1, block_size):
        parent = hash((parent, *token_ids[end - block_size : end]))
        hashes.append(parent)
    return tuple(hashes)


def trace_block_hashes(
    trace_ids: Sequence[int],
    num_tokens: int,
    block_size: int,
    trace_block_tokens: int = TRACE_BLOCK_TOKENS,
) -> tuple[int, ...]:
    """Engine block hashes for a prompt of ``num_tokens`` described by trace prefix ids."""
    if block_size < 1 or trace_block_tokens < 1:
        raise ValueError("block sizes must be at least 1")
    covered = min(num_tokens, len(trace_ids) * trace_block_tokens)
    hashes: list[int] = []
    for end in range(block_size, covered + 1, block_size):
        last = end - 1
        trace_id = trace_ids[last // trace_block_tokens]
        hashes.append(hash((_TRACE_TAG, trace_id, last % trace_block_tokens)))
    return tuple(hashes)
