"""ASGI middleware that vLLM's server loads (``--middleware``) to drain gracefully.

It runs inside vLLM's process, so it imports nothing but the standard library. The worker
wrapper asks for a drain by creating the file named in ``TIDEGATE_DRAIN_FILE``; from then
on ``/health`` answers 503 (probers stop routing here) and new work (any POST) answers 503
in vLLM's error shape (the gateway retries it on another worker before anything reaches
the client). Requests already inside run to completion. ``GET /tidegate/drain`` reports the
flag and how many requests are still inside, which the wrapper polls before stopping vLLM.
``GET /tidegate/live`` is vLLM's own ``/health``, untouched by the drain: a liveness probe
pointed there does not restart a worker that is only draining.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from workers.vllm.command import DRAIN_FILE_ENV

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATUS_PATH = "/tidegate/drain"
LIVE_PATH = "/tidegate/live"
HEALTH_PATHS = frozenset({"/health", "/ping"})


class Verdict(enum.Enum):
    PASS = "pass"
    STATUS = "status"
    LIVE = "live"
    NOT_READY = "not_ready"
    REFUSE = "refuse"


def verdict_for(method: str, path: str, draining: bool) -> Verdict:
    """What to do with one HTTP request (pure)."""
    if path == STATUS_PATH and method == "GET":
        return Verdict.STATUS
    if path == LIVE_PATH and method == "GET":
        return Verdict.LIVE
    if not draining:
        return Verdict.PASS
    if path in HEALTH_PATHS:
        return Verdict.NOT_READY
    if method == "POST":
        return Verdict.REFUSE
    return Verdict.PASS


def error_body(message: str) -> bytes:
    error = {"message": message, "type": "ServiceUnavailableError", "param": None, "code": 503}
    return json.dumps({"error": error}).encode()


class DrainMiddleware:
    """Counts work (POST requests) in flight and turns new work away once the drain flag
    exists. A stream counts until its last byte is sent."""

    def __init__(self, app: ASGIApp, drain_file: str | None = None) -> None:
        self.app = app
        self.drain_file = drain_file if drain_file is not None else os.environ.get(DRAIN_FILE_ENV)
        self.in_flight = 0

    @property
    def draining(self) -> bool:
        return self.drain_file is not None and os.path.exists(self.drain_file)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        verdict = verdict_for(scope["method"], scope["path"], self.draining)
        if verdict is Verdict.STATUS:
            status = {"draining": self.draining, "in_flight": self.in_flight}
            await _respond(send, 200, json.dumps(status).encode())
        elif verdict is Verdict.LIVE:
            await self.app({**scope, "path": "/health", "raw_path": b"/health"}, receive, send)
        elif verdict is Verdict.NOT_READY:
            await _respond(send, 503, error_body("The worker is draining."))
        elif verdict is Verdict.REFUSE:
            body = error_body("The worker is draining; send the request to another worker.")
            await _respond(send, 503, body, retry_after=True)
        elif scope["method"] == "POST":
            self.in_flight += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.in_flight -= 1
        else:
            await self.app(scope, receive, send)


DRAINING_HEADER = (b"x-tidegate-draining", b"1")
"""Marks the 503s of a draining worker, so a gateway can stop routing to it at once."""


async def _respond(send: Send, status: int, body: bytes, *, retry_after: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append(DRAINING_HEADER)
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
