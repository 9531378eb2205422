"""BlockPool: allocation, references, the prefix-cache map and LRU eviction order."""

from __future__ import annotations

import pytest

from workers.sim.kv_cache import BlockPool


def test_allocation_takes_free_blocks_in_order_and_counts_usage() -> None:
    pool = BlockPool(4)
    assert (pool.num_free, pool.num_used, pool.usage) == (4, 0, 0.0)
    assert pool.allocate(3) == [0, 1, 2]
    assert (pool.num_free, pool.num_used, pool.usage) == (1, 3, 0.75)
    with pytest.raises(RuntimeError):
        pool.allocate(2)


def test_freeing_returns_blocks_tail_first_to_the_end_of_the_queue() -> None:
    pool = BlockPool(4)
    first = pool.allocate(2)  # [0, 1]
    pool.free(first)  # queue: 2, 3, 1, 0
    assert pool.allocate(4) == [2, 3, 1, 0]


@pytest.mark.parametrize(
    ("touches", "frees", "free_after"),
    [(0, 1, 2), (1, 1, 1), (1, 2, 2), (2, 2, 1)],
)
def test_shared_blocks_are_free_only_when_nobody_references_them(
    touches: int, frees: int, free_after: int
) -> None:
    pool = BlockPool(2)
    (block,) = pool.allocate(1)
    for _ in range(touches):
        pool.touch([block])
    for _ in range(frees):
        pool.free([block])
    assert pool.num_free == free_after
    assert pool.ref_count(block) == 1 + touches - frees


def test_cached_blocks_survive_freeing_until_evicted_least_recently_freed_first() -> None:
    pool = BlockPool(3)
    a, b, c = pool.allocate(3)
    for block, block_hash in ((a, 100), (b, 200), (c, 300)):
        pool.cache(block, block_hash)
    pool.free([b])
    pool.free([a])
    pool.free([c])  # LRU order: b, a, c
    assert pool.longest_cached_prefix([100, 200, 300], 3) == [a, b, c]
    assert pool.allocate(1) == [b]  # evicts the least recently freed
    assert not pool.is_cached(200)
    assert pool.longest_cached_prefix([100, 200, 300], 3) == [a]
    assert pool.num_cached == 2


def test_a_hit_on_a_free_cached_block_takes_it_off_the_free_queue() -> None:
    pool = BlockPool(2)
    (block,) = pool.allocate(1)
    pool.cache(block, 7)
    pool.free([block])
    hits = pool.longest_cached_prefix([7], 5)
    assert pool.num_free_among(hits) == 1
    pool.touch(hits)
    assert pool.num_free == 1 and pool.ref_count(block) == 1
    assert pool.allocate(1) == [1]  # the cached block is not evictable while in use


def test_longest_prefix_stops_at_the_first_miss_and_at_max_blocks() -> None:
    pool = BlockPool(4)
    blocks = pool.allocate(3)
    for block, block_hash in zip(blocks, (1, 2, 3), strict=True):
        pool.cache(block, block_hash)
    assert pool.longest_cached_prefix([1, 9, 3], 3) == blocks[:1]
    assert pool.longest_cached_prefix([1, 2, 3], 2) == blocks[:2]
    assert pool.longest_cached_prefix([1, 2, 3], 0) == []


def test_a_duplicate_hash_keeps_the_first_block() -> None:
    pool = BlockPool(2)
    a, b = pool.allocate(2)
    pool.cache(a, 5)
    pool.cache(b, 5)
    assert pool.longest_cached_prefix([5], 1) == [a]
    assert pool.num_cached == 1


def test_pool_needs_a_block() -> None:
    with pytest.raises(ValueError):
        BlockPool(0)
