"""PagedAttention block accounting with a prefix cache, as vLLM's V1 block pool keeps it.

The KV cache is ``num_blocks`` fixed-size blocks. A block is *referenced* while some
running request uses it, *cached* while it holds a full block of tokens whose chained hash
is registered, and *free* when nothing references it. Free blocks wait in one queue in
the order they were freed (least recently used first); allocation takes blocks from the
head of that queue, and taking a cached block evicts its hash. So unreferenced cached
blocks stay reusable until they are needed, and the least recently used go first.

A request that finishes frees its blocks tail first, so a prompt's later blocks (less
likely to be shared) are evicted before its earlier ones, as vLLM does.

Only integers are stored (block ids, hashes and counts), so the pool is cheap enough to
replay hours of trace in seconds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence


class BlockPool:
    """Block ids are ``0 .. num_blocks - 1``; all start free and uncached."""

    __slots__ = ("_cached", "_free", "_hash_of", "_refs", "num_blocks")

    def __init__(self, num_blocks: int) -> None:
        if num_blocks < 1:
            raise ValueError("num_blocks must be at least 1")
        self.num_blocks = num_blocks
        self._refs = [0] * num_blocks
        self._hash_of: list[int | None] = [None] * num_blocks
        self._cached: dict[int, int] = {}  # block hash -> block id
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))

    # -- queries ---------------------------------------------------------------------

    @property
    def num_free(self) -> int:
        """Blocks no request references (cached or not): what allocation can take."""
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_blocks - len(self._free)

    @property
    def num_cached(self) -> int:
        """Blocks holding a registered hash, referenced or not."""
        return len(self._cached)

    @property
    def usage(self) -> float:
        """vLLM's ``kv_cache_usage_perc``: referenced blocks over all blocks."""
        return self.num_used / self.num_blocks

    def longest_cached_prefix(self, hashes: Iterable[int], max_blocks: int) -> list[int]:
        """Block ids of the longest run of ``hashes`` (from the first) that is cached,
        at most ``max_blocks`` long."""
        found: list[int] = []
        if max_blocks <= 0:
            return found
        cached = self._cached
        for block_hash in hashes:
            block = cached.get(block_hash)
            if block is None:
                break
            found.append(block)
            if len(found) == max_blocks:
                break
        return found

    def num_free_among(self, blocks: Sequence[int]) -> int:
        """How many of ``blocks`` are currently unreferenced (and so counted as free)."""
        refs = self._refs
        return sum(1 for block in blocks if refs[block] == 0)

    def ref_count(self, block: int) -> int:
        return self._refs[block]

    def is_cached(self, block_hash: int) -> bool:
        return block_hash in self._cached

    # -- transitions -----------------------------------------------------------------

    def touch(self, blocks: Iterable[int]) -> None:
        """Take a reference on cached blocks a request reuses (prefix-cache hits)."""
        refs, free = self._refs, self._free
        for block in blocks:
            if refs[block] == 0:
                del free[block]
            refs[block] += 1

    def allocate(self, count: int) -> list[int]:
        """``count`` new blocks, evicting the least recently freed cached ones as needed.

        The caller checks ``num_free`` first; asking for more is a programming error.
        """
        if count > len(self._free):
            raise RuntimeError(f"asked for {count} blocks with {len(self._free)} free")
        free, refs, hash_of, cached = self._free, self._refs, self._hash_of, self._cached
        blocks: list[int] = []
        for _ in range(count):
            block, _unused = free.popitem(last=False)
            old = hash_of[block]
            if old is not None:
                hash_of[block] = None
                if cached.get(old) == block:
                    del cached[old]
            refs[block] = 1
            blocks.append(block)
        return blocks

    def cache(self, block: int, block_hash: int) -> None:
        """Register a referenced, now full, block under its chained hash. A hash already
        cached in another block keeps that block (the duplicate stays unregistered)."""
        if block_hash in self._cached or self._hash_of[block] is not None:
            return
        self._hash_of[block] = block_hash
        self._cached[block_hash] = block

    def free(self, blocks: Sequence[int]) -> None:
        """Drop one reference on each of a request's blocks, tail first; blocks nobody
        references any more join the end of the free queue (cached ones stay cached)."""
        refs, free = self._refs, self._free
        for block in reversed(blocks):
            refs[block] -= 1
            if refs[block] == 0:
                free[block] = None
