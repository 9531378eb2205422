"""Block hashes from prompt tokens and from trace prefix ids; the fake tokenizer's ids."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workers.sim import tokens
from workers.sim.prefix import chain_block_hashes, trace_block_hashes


@pytest.mark.parametrize(("length", "blocks"), [(0, 0), (3, 0), (4, 1), (9, 2), (16, 4)])
def test_only_full_blocks_are_hashed(length: int, blocks: int) -> None:
    assert len(chain_block_hashes(list(range(length)), 4)) == blocks


def test_hashes_are_chained_so_equal_hashes_mean_equal_prefixes() -> None:
    base = list(range(12))
    same = chain_block_hashes(base, 4)
    assert chain_block_hashes([*base, 99], 4) == same
    changed_last = chain_block_hashes([*base[:8], 0, 0, 0, 0], 4)
    assert changed_last[:2] == same[:2] and changed_last[2] != same[2]
    changed_first = chain_block_hashes([7, *base[1:]], 4)
    assert all(a != b for a, b in zip(changed_first, same, strict=True))
    assert len(set(chain_block_hashes([1, 2, 3, 4] * 3, 4))) == 3  # equal blocks, new chain


def test_hashes_do_not_depend_on_the_process_hash_seed() -> None:
    code = (
        "from workers.sim.prefix import chain_block_hashes, trace_block_hashes;"
        "print(chain_block_hashes(list(range(40)), 16), trace_block_hashes([5, 6], 700, 16))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


@pytest.mark.parametrize(
    ("tokens_", "block_size", "expected"),
    [(512, 16, 32), (1000, 16, 62), (1024, 16, 64), (1024, 512, 2), (1000, 1024, 0)],
)
def test_trace_ids_map_to_the_engine_blocks_they_cover(
    tokens_: int, block_size: int, expected: int
) -> None:
    assert len(trace_block_hashes([1, 2], tokens_, block_size)) == expected


def test_trace_prompts_share_engine_blocks_exactly_where_their_ids_agree() -> None:
    a = trace_block_hashes([10, 11, 12], 1536, 16)
    b = trace_block_hashes([10, 11, 99], 1536, 16)
    c = trace_block_hashes([77, 11, 12], 1536, 16)
    assert a[:64] == b[:64] and a[64] != b[64]
    assert not set(a) & set(c[:32])
    # A larger engine block covering two trace ids is keyed by the later one.
    assert trace_block_hashes([10, 11], 1024, 1024) != trace_block_hashes([10, 12], 1024, 1024)


def test_block_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        chain_block_hashes([1], 0)
    with pytest.raises(ValueError):
        trace_block_hashes([1], 10, 0)


# -- token ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "Hello there, worker!"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "a b"}, {"type": "image"}]},
            {"role": "assistant"},
        ],
    ],
)
def test_chat_token_ids_agree_with_the_count(messages: list[dict[str, object]]) -> None:
    ids = tokens.chat_token_ids(messages)
    assert len(ids) == tokens.count_chat_prompt(messages)
    assert ids == tokens.chat_token_ids(messages)


@pytest.mark.parametrize("prompt", ["Once upon a time", "", [5, 6, 7]])
def test_completion_token_ids_agree_with_the_count(prompt: str | list[int]) -> None:
    ids = tokens.completion_token_ids(prompt)
    assert len(ids) == tokens.count_completion_prompt(prompt)


def test_different_texts_give_different_ids() -> None:
    assert tokens.text_token_ids("tide moon") != tokens.text_token_ids("moon tide")
    assert tokens.text_token_ids("tide") == tokens.text_token_ids("tide")
