"""Build the tiny model: train a byte-level BPE tokenizer on standard-library source, then
save a random Llama checkpoint sized to it, both with fixed seeds.

The heavy libraries (torch, tokenizers, transformers) come with the ``cpu`` or ``gpu``
extra and are imported only here, inside the functions that need them.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from workers.tinymodel.recipe import (
    BOS,
    CHAT_TEMPLATE,
    EOS,
    MANIFEST,
    PAD,
    SPECIAL_TOKENS,
    TinyModelRecipe,
    choose_corpus,
    is_complete,
    manifest_for,
    read_manifest,
)

log = logging.getLogger(__name__)


class TinyModelError(Exception):
    """The model cannot be built where it was asked for."""


def ensure_tiny_model(directory: Path, recipe: TinyModelRecipe | None = None) -> bool:
    """Make ``directory`` hold the tiny model; False if a complete build was already there.

    The build happens in a sibling temporary directory and is moved into place at the end,
    so a reader never sees half a model. An existing directory is replaced only if it is
    empty or an earlier tiny-model build; anything else is refused.
    """
    recipe = recipe or TinyModelRecipe()
    if is_complete(directory, recipe):
        return False
    directory.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time (a test session and `tidegate up` may start together).
    with (directory.parent / f".{directory.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(directory, recipe):
            return False
        _check_replaceable(directory)
        _build(directory, recipe)
    log.info("built the tiny model in %s", directory)
    return True


def _build(directory: Path, recipe: TinyModelRecipe) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    staging.chmod(0o755)
    try:
        corpus_names, corpus = _read_corpus(recipe.corpus_max_bytes)
        tokenizer = _train_tokenizer(corpus, recipe)
        _save_model(staging, tokenizer, recipe)
        files = sorted(p.name for p in staging.iterdir())
        digest = _corpus_digest(corpus_names, corpus)
        (staging / MANIFEST).write_text(manifest_for(recipe, files, digest))
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_replaceable(directory: Path) -> None:
    if not directory.exists():
        return
    if not directory.is_dir():
        raise TinyModelError(f"{directory} exists and is not a directory")
    if any(directory.iterdir()) and read_manifest(directory) is None:
        raise TinyModelError(f"{directory} is not empty and holds no tiny model; not replacing it")


def _read_corpus(max_bytes: int) -> tuple[list[str], list[str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    listing = [(p.name, p.stat().st_size) for p in stdlib.glob("*.py") if p.is_file()]
    names = choose_corpus(listing, max_bytes)
    if not names:
        raise TinyModelError(f"no text to train the tokenizer on under {stdlib}")
    texts = [(stdlib / name).read_text(encoding="utf-8", errors="replace") for name in names]
    return names, texts


def _corpus_digest(names: list[str], texts: list[str]) -> str:
    digest = hashlib.sha256()
    for name, text in zip(names, texts, strict=True):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def _train_tokenizer(corpus: list[str], recipe: TinyModelRecipe) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    # Completions get a BOS like Llama's tokenizer adds; chat prompts carry it in the template.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 0)]
    )
    return tokenizer


def _save_model(directory: Path, tokenizer: Any, recipe: TinyModelRecipe) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=recipe.max_position_embeddings,
    )
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_hidden_layers,
        num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_attention_heads,
        head_dim=recipe.head_dim,
        max_position_embeddings=recipe.max_position_embeddings,
        bos_token_id=tokenizer.token_to_id(BOS),
        eos_token_id=tokenizer.token_to_id(EOS),
        pad_token_id=tokenizer.token_to_id(PAD),
        tie_word_embeddings=True,
        dtype="bfloat16",
    )
    torch.manual_seed(recipe.seed)
    # Initialised in float32 (seeded), stored in bfloat16: what vLLM would cast it to anyway.
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    wrapped.save_pretrained(directory)
