"""What the tiny model is, and how to tell a finished build from a partial one.

Pure: no torch, no transformers. The builder (``build.py``) follows this recipe; the
manifest it writes last is what makes a directory count as complete, so an interrupted
build is rebuilt and a finished one is reused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_DIR = Path(".run") / "tiny-model"
"""Relative to the current directory: inside the work tree, git-ignored."""

MANIFEST = "tidegate-tiny-model.json"
RECIPE_VERSION = 2

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (BOS, EOS, PAD, *ROLE_TOKENS)

# One line per message, the role as a special token, each message closed by EOS.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' }}\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}\n{% endif %}"
)


class TinyModelRecipe(BaseModel):
    """Shape of the network and tokenizer. Attention heads of 64 keep vLLM's CPU kernels,
    which only support standard head sizes, usable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = RECIPE_VERSION
    seed: int = 0
    vocab_size: int = Field(3072, ge=512, le=65536, description="BPE vocabulary incl. specials")
    hidden_size: int = Field(128, ge=16)
    intermediate_size: int = Field(256, ge=16)
    num_hidden_layers: int = Field(2, ge=1)
    num_attention_heads: int = Field(2, ge=1)
    head_dim: int = Field(64, ge=8)
    max_position_embeddings: int = Field(2048, ge=128)
    corpus_max_bytes: int = Field(
        2_000_000, ge=10_000, description="text read from the standard library to train BPE"
    )

    @model_validator(mode="after")
    def _heads_fill_hidden(self) -> TinyModelRecipe:
        if self.num_attention_heads * self.head_dim != self.hidden_size:
            raise ValueError("num_attention_heads * head_dim must equal hidden_size")
        return self


def choose_corpus(files: Iterable[tuple[str, int]], max_bytes: int) -> list[str]:
    """Names (sorted) of the files whose text trains the tokenizer.

    ``files`` are (name, size) pairs in any order; files are taken by name until
    ``max_bytes`` would be exceeded, so the choice depends only on the listing.
    """
    chosen: list[str] = []
    total = 0
    for name, size in sorted(files):
        if size <= 0 or total + size > max_bytes:
            continue
        chosen.append(name)
        total += size
    return chosen


def manifest_for(recipe: TinyModelRecipe, files: Sequence[str], corpus_sha256: str) -> str:
    payload = {"recipe": recipe.model_dump(), "files": sorted(files), "corpus": corpus_sha256}
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def is_complete(directory: Path, recipe: TinyModelRecipe) -> bool:
    """True if ``directory`` holds a finished build of exactly this recipe."""
    manifest = read_manifest(directory)
    if manifest is None or manifest.get("recipe") != recipe.model_dump():
        return False
    files = manifest.get("files")
    return isinstance(files, list) and all((directory / str(f)).is_file() for f in files)
