"""Raw ASGI plumbing for the worker: typed aliases, body reading, response sending,
lifespan, and the guard that turns a client disconnect into an engine abort."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any

import orjson

from workers.sim.engine import GenerationStream

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADER = (b"content-type", b"application/json")
SSE_HEADER = (b"content-type", b"text/event-stream; charset=utf-8")


class AbortOnDisconnect:
    """Watches the receive channel while a request runs; on ``http.disconnect`` aborts
    the engine request (freeing its slot at once) and cancels the handler, whose
    cancellation is then absorbed here. On any exit the request is aborted unless it
    already finished, so an error in the handler never leaks a running slot."""

    __slots__ = ("_disconnected", "_done", "_receive", "_stream", "_task", "_watcher")

    def __init__(self, receive: Receive, stream: GenerationStream) -> None:
        self._receive = receive
        self._stream = stream
        self._done = False
        self._disconnected = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self._done:
            self._disconnected = True
            self._stream.abort()
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._done = True
        self._watcher.cancel()
        self._stream.abort()
        if self._disconnected and exc_type is asyncio.CancelledError:
            self._task.uncancel()
            return True
        return False


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client left before sending it."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def send_bytes(
    send: Send, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    await send_bytes(send, status, orjson.dumps(payload), (JSON_HEADER,))


async def send_chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
