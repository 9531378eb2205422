"""The swept groups, and vLLM's start-up checks applied before any simulation."""

from __future__ import annotations

import pytest

from tests.tune.support import CRAMPED, FAST, SLOW, TINY, group
from workers.sim.engine_config import EngineConfig
from workers.tune.space import SearchSpace, check_group, roofline_profiles, split_groups

PROFILES = roofline_profiles(TINY, {h.name: h for h in (SLOW, FAST, CRAMPED)})


def test_groups_are_every_combination_deduplicated_and_sorted() -> None:
    space = SearchSpace(
        hardware=("slow", "fast"), tp=(2, 1, 2), max_num_seqs=(64,), max_num_batched_tokens=(512,)
    )
    assert [g.label for g in space.groups()] == [
        "slow tp1 seqs64 mbt512",
        "slow tp2 seqs64 mbt512",
        "fast tp1 seqs64 mbt512",
        "fast tp2 seqs64 mbt512",
    ]
    assert space.num_candidates == 4 * 16


@pytest.mark.parametrize(
    ("hardware", "tp", "seqs", "mbt", "max_len", "kind", "words"),
    [
        ("slow", 1, 64, 2048, 4096, None, ""),
        ("slow", 3, 64, 2048, 4096, "invalid", "tp 3 does not divide 4 attention heads"),
        ("slow", 1, 256, 128, 4096, "invalid", "max_num_batched_tokens 128 < max_num_seqs 256"),
        ("cramped", 1, 64, 2048, 16, "memory", "need 2.91 MiB per GPU, 2.25 MiB usable"),
        ("cramped", 2, 64, 2048, 4096, "memory", "less than max_model_len 4,096"),
        ("cramped", 4, 64, 2048, 4096, None, ""),  # a quarter of the weights each: fits
        ("slow", 1, 64, 2048, 10**6, "memory", "less than max_model_len 1,000,000"),
    ],
)
def test_check_group(
    hardware: str, tp: int, seqs: int, mbt: int, max_len: int, kind: str | None, words: str
) -> None:
    g = group(hardware, tp, seqs, mbt)
    config = g.engine_config(EngineConfig(max_model_len=max_len))
    misfit = check_group(
        g, PROFILES(hardware, tp), config, max_model_len=max_len, attention_heads=4
    )
    if kind is None:
        assert misfit is None
    else:
        assert misfit is not None and misfit.kind == kind and words in misfit.reason


def test_weights_that_do_not_fit_say_how_much_they_need_without_head_check() -> None:
    g = group("cramped", 1)
    config = g.engine_config(EngineConfig(max_model_len=16))
    misfit = check_group(g, PROFILES("cramped", 1), config, max_model_len=16)
    assert misfit is not None
    assert misfit.reason == "weights + activation reserve need 2.91 MiB per GPU, 2.25 MiB usable"


def test_split_groups() -> None:
    groups = [group("slow"), group("cramped")]
    fits, misfits = split_groups(groups, PROFILES, EngineConfig(max_model_len=4096))
    assert fits == [group("slow")] and [m.group for m in misfits] == [group("cramped")]
