"""``tidegate sim-worker``: serve one simulated vLLM worker with uvicorn.

SIGTERM drains instead of stopping: the app turns ``/health`` and new requests to 503 at
once, requests in flight run to completion (for at most ``--drain-grace-s``), then the
server shuts down and the process exits 0. SIGINT (Ctrl-C) keeps uvicorn's behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from workers.sim.engines import resolve_profile
from workers.sim.profiles import ProfileError
from workers.sim.settings import SimSettings

if TYPE_CHECKING:
    from workers.sim.server import SimApp

# Once drained (or out of grace), how long uvicorn may wait for connections to close.
_SHUTDOWN_TIMEOUT_S = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidegate sim-worker",
        description="Serve a simulated vLLM-compatible OpenAI API (no GPU needed).",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True, help="served model name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="fixed delay: to 1st token")
    parser.add_argument("--token-delay-ms", type=float, default=0.0, help="fixed delay: ITL")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="running sequences")
    parser.add_argument("--output-tokens", type=int, default=64, help="natural output length")
    parser.add_argument("--max-model-len", type=int, default=8192)
    parser.add_argument("--embedding-dim", type=int, default=16)
    model = parser.add_argument_group("batching model (with --profile)")
    model.add_argument(
        "--profile", help="model-on-hardware profile, e.g. llama3-8b-h100 (default: fixed delays)"
    )
    model.add_argument("--profile-file", help="YAML/JSON file with more profiles")
    model.add_argument("--max-num-batched-tokens", type=int, default=8192)
    model.add_argument("--block-size", type=int, default=16)
    model.add_argument("--num-gpu-blocks-override", type=int, dest="num_gpu_blocks")
    model.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    model.add_argument(
        "--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True
    )
    model.add_argument(
        "--scheduling-policy", default="fcfs", help="fcfs, or priority (requests' priority)"
    )
    parser.add_argument(
        "--drain-grace-s", type=float, default=30.0, help="SIGTERM: time to finish requests"
    )
    return parser


def parse_settings(argv: list[str]) -> SimSettings:
    """Settings from command-line arguments; exits with status 2 on invalid values,
    including a profile name (or profile file) that does not resolve."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    try:
        settings = SimSettings(**args)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
            if err["loc"]
            else err["msg"]
            for err in exc.errors()
        )
        parser.error(problems)
    if settings.profile is not None:
        try:
            resolve_profile(settings)
        except (ProfileError, OSError) as exc:
            parser.error(str(exc))
    return settings


def _ignore_redelivered_sigterm(signum: int, frame: FrameType | None) -> None:
    """See ``main``."""


def main(argv: list[str]) -> int:
    settings = parse_settings(argv)
    import uvicorn  # imported late so `--help` and argument errors stay instant

    from workers.sim.server import create_app

    class DrainingServer(uvicorn.Server):
        """uvicorn, except that SIGTERM drains the app before the server stops."""

        def __init__(self, config: uvicorn.Config, app: SimApp, grace_s: float) -> None:
            super().__init__(config)
            self._app = app
            self._grace_s = grace_s
            self._loop: asyncio.AbstractEventLoop | None = None
            self._drain_task: asyncio.Task[None] | None = None

        async def serve(self, sockets: Any = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig != signal.SIGTERM or self._loop is None:
                super().handle_exit(sig, frame)
            elif not self._app.draining:
                self._app.begin_drain()
                self._loop.call_soon_threadsafe(self._start_drain)

        def _start_drain(self) -> None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

        async def _drain(self) -> None:
            await self._app.drained(self._grace_s)
            self.should_exit = True

    app = create_app(settings)
    # A SIGTERM that arrives before the server installs its handlers is re-raised by
    # uvicorn after its shutdown; by then there is nothing left to do but exit 0.
    signal.signal(signal.SIGTERM, _ignore_redelivered_sigterm)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=_SHUTDOWN_TIMEOUT_S,
    )
    try:
        DrainingServer(config, app, settings.drain_grace_s).run()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
