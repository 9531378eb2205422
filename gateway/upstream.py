"""One try at one worker: post the request, wait for its first byte, relay its answer.

The proxy (``gateway/proxy.py``) admits, routes and retries across workers; this module is
what happens at one of them. A failure before anything reached the client is raised as
:class:`TryNext`, which the proxy retries on the next-best worker. While the worker has not
answered, the request's prompt counts in the worker's prefill backlog
(:class:`PrefillClaim`), which admission and routing may bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from gateway.errors import UpstreamTimeout
from gateway.exchange import Answer, ClientSide, forwarded_headers, stream_error
from gateway.metrics import GatewayMetrics
from gateway.protocol import ProxyRequest, SseTap, Usage, usage_of_body
from gateway.settings import TimeoutSettings
from scheduler.pool import EndpointPool

log = logging.getLogger(__name__)

DRAINING_HEADER = "x-tidegate-draining"
_UPSTREAM_HEADERS = {"content-type": "application/json"}
_RETRIABLE_CONNECT = (
    aiohttp.ClientConnectorError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ConnectionTimeoutError,
)


class TryNext(Exception):
    """This worker failed before anything reached the client; try another."""

    def __init__(self, outcome: str, *, unhealthy: bool, answer: Answer | None = None) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.unhealthy = unhealthy
        self.answer = answer


class PrefillClaim:
    """One attempt's prompt tokens in its worker's prefill backlog, from dispatch until the
    worker's first byte (a stream) or whole answer (otherwise) comes back. ``release`` is
    idempotent, so every exit path (error, retry, client gone) calls it: a claim never
    released would keep its worker full for good."""

    __slots__ = ("_held", "_on_release", "_pool", "_tokens", "_url")

    def __init__(
        self, pool: EndpointPool, url: str, tokens: int, on_release: Callable[[], None]
    ) -> None:
        self._pool, self._url, self._tokens, self._on_release = pool, url, tokens, on_release
        pool.start_prefill(url, tokens)
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._pool.end_prefill(self._url, self._tokens)
            self._on_release()


class Upstream:
    """Sends requests to workers over one shared client session."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        metrics: GatewayMetrics,
        clock: Callable[[], float],
        timeouts: TimeoutSettings,
    ) -> None:
        self._session = session
        self._metrics = metrics
        self._clock = clock
        self._connect_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect_s)
        self._first_byte_s = timeouts.first_byte_s
        self._idle_s = timeouts.idle_stream_s

    async def attempt(
        self,
        url: str,
        client: ClientSide,
        request: ProxyRequest,
        started: float,
        state: dict[str, bool],
        prefill: PrefillClaim,
    ) -> tuple[int, str]:
        """One worker's try: (status answered, attempt outcome) or :class:`TryNext`.
        ``state["finishing"]`` is set once the client's answer is being completed."""
        response: aiohttp.ClientResponse | None = None
        clean = False
        try:
            try:
                async with asyncio.timeout(self._first_byte_s) as deadline:
                    response = await self._session.post(
                        url,
                        data=request.body,
                        headers=_UPSTREAM_HEADERS,
                        timeout=self._connect_timeout,
                    )
                    headers = forwarded_headers(response)
                    if response.status != 200 or not request.stream:
                        body = await response.read()
                        prefill.release()
                        answer = Answer(response.status, headers, body)
                        if response.status == 503:
                            # A draining worker says so: stop routing to it before the next probe.
                            draining = DRAINING_HEADER in response.headers
                            raise TryNext("http_503", unhealthy=draining, answer=answer)
                        state["finishing"] = True
                        await client.answer(answer)
                        clean = True
                        self._account_usage(request.model, usage_of_body(body))
                        status = response.status
                        return status, "ok" if status < 500 else f"http_{status}"
                    first = await response.content.readany()
                    prefill.release()
                    if not first:
                        raise TryNext("empty_stream", unhealthy=False)
                    deadline.reschedule(None)
            except _RETRIABLE_CONNECT as exc:
                raise TryNext(type(exc).__name__, unhealthy=True) from None
            except aiohttp.ClientPayloadError:
                raise TryNext("broken_response", unhealthy=True) from None
            except TimeoutError:
                raise UpstreamTimeout(
                    f"The worker did not answer within {self._first_byte_s:g}s."
                ) from None
            clean = await self._relay_stream(
                response, first, headers, client, request, started, state
            )
            return 200, "ok" if clean else "broken_stream"
        finally:
            if response is not None:
                if clean:
                    response.release()
                else:
                    response.close()

    async def _relay_stream(
        self,
        response: aiohttp.ClientResponse,
        first: bytes,
        headers: list[tuple[bytes, bytes]],
        client: ClientSide,
        request: ProxyRequest,
        started: float,
        state: dict[str, bool],
    ) -> bool:
        """Stream events to the client as they come; True if the worker ended cleanly."""
        tap = SseTap(strip_usage=request.usage_injected)
        model, metrics, clock = request.model, self._metrics, self._clock
        await client.start(200, headers)
        ready, _ = tap.feed(first)
        last = first_at = clock()
        metrics.first_token(model, last - started)
        later_events = 0
        if ready:
            await client.body(ready, more=True)
        clean = False
        try:
            async with asyncio.timeout(None) as idle:
                loop = asyncio.get_running_loop()
                while True:
                    idle.reschedule(loop.time() + self._idle_s)
                    chunk = await response.content.readany()
                    if not chunk:
                        clean = True
                        break
                    ready, events = tap.feed(chunk)
                    if events:
                        now = clock()
                        metrics.inter_token(model, (now - last) / events, events)
                        last, later_events = now, later_events + events
                        await client.body(ready, more=True)
        except TimeoutError:
            log.warning("stream from %s idle for %ss; closing it", response.url, self._idle_s)
            await client.body(stream_error("The worker's stream stalled."), more=True)
        except aiohttp.ClientPayloadError:
            log.warning("stream from %s broke off mid-way", response.url)
            await client.body(stream_error("The worker's stream broke off."), more=True)
        if clean and later_events:
            metrics.time_per_output_token(model, (last - first_at) / later_events)
        state["finishing"] = True
        await client.body(tap.flush(), more=False)
        self._account_usage(model, tap.usage)
        return clean

    def _account_usage(self, model: str, usage: Usage | None) -> None:
        if usage is not None:
            self._metrics.usage(model, usage.prompt_tokens, usage.completion_tokens)
