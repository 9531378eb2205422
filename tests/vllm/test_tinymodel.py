"""The tiny model: its recipe (pure) and a real build (torch, tokenizers, transformers)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.vllm.engine_stack import requires_engine
from workers.tinymodel.recipe import (
    MANIFEST,
    TinyModelRecipe,
    choose_corpus,
    is_complete,
    manifest_for,
)


@pytest.mark.parametrize(
    ("files", "max_bytes", "chosen"),
    [
        ([("b.py", 10), ("a.py", 10), ("c.py", 10)], 25, ["a.py", "b.py"]),
        ([("a.py", 30), ("b.py", 10)], 25, ["b.py"]),  # too big alone: skipped, not the end
        ([("a.py", 0), ("b.py", 5)], 25, ["b.py"]),
        ([], 25, []),
    ],
)
def test_choose_corpus_depends_only_on_the_listing(files, max_bytes, chosen):
    assert choose_corpus(files, max_bytes) == chosen
    assert choose_corpus(reversed(files), max_bytes) == chosen


def test_recipe_keeps_a_standard_head_size():
    recipe = TinyModelRecipe()
    assert recipe.head_dim == 64 and recipe.num_attention_heads * 64 == recipe.hidden_size
    with pytest.raises(ValidationError):
        TinyModelRecipe(hidden_size=128, num_attention_heads=3)
    with pytest.raises(ValidationError):
        TinyModelRecipe(layers=2)  # type: ignore[call-arg]


def test_complete_means_manifest_of_this_recipe_and_every_file(tmp_path):
    recipe = TinyModelRecipe()
    assert not is_complete(tmp_path, recipe)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / MANIFEST).write_text(manifest_for(recipe, ["config.json"], "abc"))
    assert is_complete(tmp_path, recipe)
    assert not is_complete(tmp_path, TinyModelRecipe(seed=1))
    (tmp_path / "config.json").unlink()
    assert not is_complete(tmp_path, recipe)
    (tmp_path / MANIFEST).write_text("not json")
    assert not is_complete(tmp_path, recipe)


def make(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidegate", "make-tiny-model", str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CHECK = """
import json, sys
from transformers import AutoConfig, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
cfg = AutoConfig.from_pretrained(sys.argv[1])
chat = tok.apply_chat_template([{"role": "user", "content": "Hi there"}],
                               tokenize=False, add_generation_prompt=True)
ids = tok("def main():")["input_ids"]
print(json.dumps({"chat": chat, "ids": ids, "bos": tok.bos_token_id, "eos": tok.eos_token_id,
                  "vocab": len(tok), "cfg_vocab": cfg.vocab_size, "decoded": tok.decode(ids[1:])}))
"""


@pytest.mark.vllm
@requires_engine
def test_build_is_deterministic_idempotent_and_loadable(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    built = make(first)
    assert built.returncode == 0, built.stderr
    assert "built in" in built.stdout
    again = make(first)
    assert again.returncode == 0 and "already complete" in again.stdout
    assert make(second).returncode == 0
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert digest(first / name) == digest(second / name), name
    assert (first / "model.safetensors").stat().st_size < 8 * 2**20
    assert not [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(".")]

    checked = subprocess.run(
        [sys.executable, "-c", CHECK, str(first)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    facts = json.loads(checked.stdout.strip().splitlines()[-1])
    assert facts["chat"] == "<s><|user|>\nHi there</s>\n<|assistant|>\n"
    assert facts["ids"][0] == facts["bos"] == 0 and facts["eos"] == 1
    assert facts["decoded"] == "def main():"
    assert facts["vocab"] == facts["cfg_vocab"] == TinyModelRecipe().vocab_size
    config = json.loads((first / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["head_dim"]) == (128, 2, 64)


@pytest.mark.vllm
@requires_engine
def test_a_foreign_directory_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = make(tmp_path)
    assert result.returncode == 2 and "not replacing" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
