"""``tidegate up``: the gateway plus local workers, one command, no other services.

Starts N simulated workers as child processes, the gateway in this process in front of
them, prints where to send requests, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from pathlib import Path

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings, SettingsError, load_settings
from tidegate.localproc import LocalWorker, start_sim_worker, stop_all, wait_healthy

DEFAULT_MODEL = "tidegate-sim"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidegate up", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="local workers to start")
    parser.add_argument("--engine", choices=["sim"], default="sim", help="worker engine")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="served model name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--config", type=Path, help="YAML gateway settings")
    parser.add_argument("--ttft-ms", type=float, default=50.0, help="simulated time to first token")
    parser.add_argument("--token-delay-ms", type=float, default=10.0, help="simulated ITL")
    parser.add_argument("--max-num-seqs", type=int, default=64, help="simulated batch limit")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        print("tidegate up: --workers must be at least 1", file=sys.stderr)
        return 2
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sim_args = [
        "--ttft-ms",
        str(args.ttft_ms),
        "--token-delay-ms",
        str(args.token_delay_ms),
        "--max-num-seqs",
        str(args.max_num_seqs),
    ]
    workers: list[LocalWorker] = []
    try:
        workers = [start_sim_worker(args.model, args=sim_args) for _ in range(args.workers)]
        wait_healthy(workers)
        settings = load_settings(
            args.config,
            {
                "server": {"host": args.host, "port": args.port},
                "discovery": {"workers": [w.url for w in workers]},
            },
        )
        asyncio.run(_serve(settings, args.model, len(workers)))
    except SettingsError as exc:
        print(f"tidegate up: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        stop_all(workers)
    return 0


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
