"""``tidegate worker``: run vLLM's OpenAI server as a Tidegate worker, with graceful drain.

Arguments after ``--`` go to vLLM verbatim, e.g.
``tidegate worker --model m --max-num-seqs 8 -- --dtype float32 --seed 1``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from workers.vllm.command import vllm_command, vllm_environment
from workers.vllm.settings import VllmWorkerSettings

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_bytes(text: str) -> int:
    """``"128M"`` -> 128000000, ``"1Gi"`` -> 1073741824, ``"4096"`` -> 4096."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]i?)?[bB]?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r}")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "").lower()])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidegate worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--model", required=True, help="model directory or hub id")
    add("--served-model-name", help="name clients ask for (default: --model)")
    add("--host", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, help="port to listen on (default 8000)")
    add("--max-num-seqs", type=int, help="sequences running at once")
    add("--max-num-batched-tokens", type=int, help="tokens per engine step")
    add("--max-model-len", type=int, help="prompt + output tokens per request")
    add("--block-size", type=int, help="tokens per KV-cache block")
    add("--enable-prefix-caching", action=argparse.BooleanOptionalAction, help="(default on)")
    add("--scheduling-policy", help="fcfs (vLLM's default) or priority (requests' priority)")
    add("--tensor-parallel-size", type=int, help="GPUs per model replica (default 1)")
    add("--gpu-memory-utilization", type=float, help="share of GPU memory vLLM may use")
    add("--kv-cache-memory-bytes", type=parse_bytes, help="KV cache size, e.g. 256Mi or 2G")
    add("--enforce-eager", action="store_true", help="no graph compilation (use on CPU)")
    add("--cpu-kvcache-space-gib", type=int, help="KV cache GiB on the CPU backend")
    add("--cache-dir", type=Path, help="directory for vLLM's and TorchInductor's caches")
    add("--drain-grace-s", type=float, help="on SIGTERM, wait this long at most (default 25)")
    add("--stop-timeout-s", type=float, help="then SIGKILL vLLM after this (default 20)")
    add("--print-command", action="store_true", help="print vLLM's command line and exit")
    return parser


def parse_settings(argv: list[str]) -> tuple[VllmWorkerSettings, bool]:
    """Settings, and whether only the command was asked for; exits 2 on invalid values."""
    ours, extra = _split_passthrough(argv)
    parser = build_parser()
    args = parser.parse_args(ours)
    fields: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k != "print_command" and v is not None
    }
    try:
        settings = VllmWorkerSettings(**fields, extra_args=tuple(extra))
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
            for err in exc.errors()
        )
        parser.error(problems)
    return settings, bool(args.print_command)


def _split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, []


def main(argv: list[str]) -> int:
    settings, print_only = parse_settings(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if print_only:
        print(shlex.join(vllm_command(settings, sys.executable)))
        return 0
    from workers.vllm.supervisor import DrainTiming, Supervisor, drain_flag_dir, exit_like

    timing = DrainTiming(settings.drain_grace_s, settings.drain_poll_s, settings.stop_timeout_s)
    with drain_flag_dir() as drain_file:
        supervisor = Supervisor(
            vllm_command(settings, sys.executable),
            vllm_environment(settings, os.environ, drain_file),
            base_url=settings.local_url,
            drain_file=drain_file,
            timing=timing,
        )
        code = supervisor.run()
    return exit_like(code)
