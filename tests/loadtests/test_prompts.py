"""Prompt text of a given length, deterministic, sharing prefixes only on purpose."""

from __future__ import annotations

import pytest

from loadtests.prompts import TRACE_BLOCK_TOKENS, WORDS, blocks_text, filler_text
from workers.sim.tokens import count_text_tokens


@pytest.mark.parametrize("n", [0, 1, 7, 100, 4096])
def test_filler_text_is_n_tokens_for_the_simulated_tokenizer(n):
    assert count_text_tokens(filler_text(n, seed=5)) == n


def test_words_are_plain_lowercase_words():
    assert all(word.isalpha() and word.islower() for word in WORDS)


def test_same_seed_same_text_and_shorter_is_a_prefix():
    assert filler_text(50, seed=9) == filler_text(50, seed=9)
    assert filler_text(80, seed=9).startswith(filler_text(50, seed=9))


def test_different_seeds_differ_from_the_first_words():
    first = {filler_text(4, seed=s) for s in range(50)}
    assert len(first) == 50


def test_blocks_with_the_same_ids_share_their_text():
    a = blocks_text((1, 2, 3), 3 * TRACE_BLOCK_TOKENS)
    b = blocks_text((1, 2, 4), 3 * TRACE_BLOCK_TOKENS)
    shared = blocks_text((1, 2), 2 * TRACE_BLOCK_TOKENS)
    assert a.startswith(shared) and b.startswith(shared)
    assert a != b


def test_block_text_is_as_long_as_asked_even_mid_block():
    assert count_text_tokens(blocks_text((7, 8), TRACE_BLOCK_TOKENS + 100)) == (
        TRACE_BLOCK_TOKENS + 100
    )
    assert count_text_tokens(blocks_text((7,), 1)) == 1


def test_a_row_longer_than_its_blocks_is_padded():
    assert count_text_tokens(blocks_text((7,), TRACE_BLOCK_TOKENS + 20)) == TRACE_BLOCK_TOKENS + 20


def test_block_text_differs_from_conversation_text():
    assert blocks_text((0,), 20) != filler_text(20, seed=0)
