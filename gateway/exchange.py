"""The two ends of one proxied exchange, as the proxy writes to them.

``ClientSide`` sends the ASGI response and remembers whether it has started (after that,
nothing can be retried or turned into an error status); the helpers pick headers to pass on
and format an in-stream error the way vLLM does.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from starlette.types import Scope, Send

from gateway.errors import GatewayError, error_body

JSON_HEADERS = [(b"content-type", b"application/json")]
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"date", b"server"}
)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class ClientSide:
    """The client side of one exchange: remembers whether the response has started."""

    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, *, more: bool) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def answer(self, answer: Answer) -> None:
        headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
        await self.start(answer.status, headers)
        await self.body(answer.body, more=False)

    async def error(self, err: GatewayError) -> None:
        headers = list(JSON_HEADERS)
        headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
        await self.answer(Answer(err.status, headers, err.body()))


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def forwarded_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    headers = ((k.lower(), v) for k, v in response.raw_headers)
    return [(k, v) for k, v in headers if k not in _HOP_BY_HOP]


def stream_error(message: str) -> bytes:
    return b"data: " + error_body(message, "server_error", None, "upstream_stream_error") + b"\n\n"
