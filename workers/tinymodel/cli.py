"""``tidegate make-tiny-model [DIR]``: build the tiny model unless DIR already holds it."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from workers.tinymodel.recipe import DEFAULT_DIR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidegate make-tiny-model",
        description="Build a tiny random-weight Llama model and tokenizer for real vLLM runs.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=DEFAULT_DIR,
        help=f"where to put it (default {DEFAULT_DIR})",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    try:
        from workers.tinymodel.build import TinyModelError, ensure_tiny_model
    except ImportError as exc:
        print(
            f"tidegate make-tiny-model: {exc.name} is missing; install the 'cpu' or 'gpu' extra",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    try:
        built = ensure_tiny_model(args.directory)
    except TinyModelError as exc:
        print(f"tidegate make-tiny-model: {exc}", file=sys.stderr)
        return 2
    took = time.monotonic() - started
    verb = f"built in {took:.1f}s" if built else "already complete"
    print(f"{args.directory}: tiny model {verb}")
    return 0
