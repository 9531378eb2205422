"""A stand-in for vLLM's server, for testing the worker wrapper without vLLM.

The real drain middleware wraps a tiny ASGI app with vLLM's two load gauges, ``/health``,
and a ``POST /v1/completions`` that takes ``{"seconds": S}`` to stay in flight that long.
Options shape how it ends, so the wrapper's exit rules can be checked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn

from workers.sim.asgi import lifespan
from workers.vllm.middleware import DrainMiddleware


class FakeEngine:
    def __init__(self) -> None:
        self.running = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        path = scope["path"]
        if path == "/health":
            await _answer(send, 200, b"", b"text/plain")
        elif path == "/metrics":
            page = (
                f'vllm:num_requests_running{{model_name="fake"}} {self.running}\n'
                'vllm:num_requests_waiting{model_name="fake"} 0\n'
            )
            await _answer(send, 200, page.encode(), b"text/plain")
        elif path == "/v1/completions" and scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            seconds = float(json.loads(body or b"{}").get("seconds", 0))
            self.running += 1
            try:
                await asyncio.sleep(seconds)
            finally:
                self.running -= 1
            await _answer(send, 200, json.dumps({"slept": seconds}).encode(), b"application/json")
        else:
            await _answer(send, 404, b"{}", b"application/json")


async def _answer(send: Any, status: int, body: bytes, kind: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]}
    )
    await send({"type": "http.response.body", "body": body})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--exit-code", type=int, default=0, help="status after a clean stop")
    parser.add_argument("--die-by-signal", action="store_true", help="end by SIGTERM itself")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--listen-after-s", type=float, default=0.0)
    parser.add_argument("--exit-at-once", type=int, help="exit with this status right away")
    parser.add_argument("--usr1-file", type=Path, help="touched on SIGUSR1")
    parser.add_argument("--started-file", type=Path, help="touched once signals are set up")
    args = parser.parse_args()
    if args.exit_at_once is not None:
        return int(args.exit_at_once)
    if args.usr1_file is not None:
        signal.signal(signal.SIGUSR1, lambda *_: args.usr1_file.touch())
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.started_file is not None:
        args.started_file.touch()
    if args.ignore_sigterm:
        while True:
            time.sleep(3600)
    time.sleep(args.listen_after_s)  # SIGTERM meanwhile ends the process by that signal
    if not args.die_by_signal:
        # uvicorn re-raises SIGTERM after its graceful stop; let this process exit normally.
        signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        DrainMiddleware(FakeEngine()),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    return int(args.exit_code)


if __name__ == "__main__":
    sys.exit(main())
