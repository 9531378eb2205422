"""``tidegate sim-worker``: serve one simulated vLLM worker with uvicorn."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from pydantic import ValidationError

from workers.sim.settings import SimSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidegate sim-worker",
        description="Serve a simulated vLLM-compatible OpenAI API (no GPU needed).",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True, help="served model name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="admission to first token")
    parser.add_argument("--token-delay-ms", type=float, default=0.0, help="gap between tokens")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="running sequences")
    parser.add_argument("--output-tokens", type=int, default=64, help="natural output length")
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--embedding-dim", type=int, default=16)
    return parser


def parse_settings(argv: list[str]) -> SimSettings:
    """Settings from command-line arguments; exits with status 2 on invalid values."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return SimSettings(
            model=args.model,
            host=args.host,
            port=args.port,
            ttft_ms=args.ttft_ms,
            token_delay_ms=args.token_delay_ms,
            max_num_seqs=args.max_num_seqs,
            output_tokens=args.output_tokens,
            max_model_len=args.max_model_len,
            embedding_dim=args.embedding_dim,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
            for err in exc.errors()
        )
        parser.error(problems)


def _ignore_redelivered_sigterm(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises SIGTERM after its graceful shutdown; by then there is nothing
    left to do, so the process exits normally with status 0."""


def main(argv: list[str]) -> int:
    settings = parse_settings(argv)
    import uvicorn  # imported late so `--help` and argument errors stay instant

    from workers.sim.server import create_app

    app = create_app(settings)
    signal.signal(signal.SIGTERM, _ignore_redelivered_sigterm)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            ws="none",
            lifespan="on",
            access_log=False,
            log_level="warning",
        )
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
