"""The proxy path: a raw ASGI handler for the three inference routes.

Kept off FastAPI's router and validation on purpose (see docs/performance.md): it reads
the body, inspects the few fields it needs, asks the router for a worker, forwards the
client's bytes (with the engine priority set, when ``upstream.engine_priority`` is on) and
streams the worker's bytes back. Failures before the first byte reaches
the client are retried on the next-best worker; a client that leaves cancels the upstream
request at once by closing its connection, which makes vLLM abort it and free its KV blocks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import aiohttp
from starlette.types import Receive, Scope, Send

from gateway.admission import AdmissionGate
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoHealthyWorker,
    RequestTooLarge,
    UpstreamTimeout,
)
from gateway.exchange import Answer, ClientSide, forwarded_headers, header, stream_error
from gateway.metrics import GatewayMetrics
from gateway.protocol import ROUTES, ProxyRequest, SseTap, Usage, inspect_request, usage_of_body
from gateway.settings import GatewaySettings
from scheduler.admission import engine_priority
from scheduler.framework import NoEndpointAvailable, Router, RoutingContext
from scheduler.pool import EndpointPool

log = logging.getLogger(__name__)


CLIENT_CLOSED = 499
SESSION_HEADER = b"x-session-id"
DRAINING_HEADER = "x-tidegate-draining"
_UPSTREAM_HEADERS = {"content-type": "application/json"}
_RETRIABLE_CONNECT = (
    aiohttp.ClientConnectorError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ConnectionTimeoutError,
)


class _ClientGone(Exception):
    """The client disconnected before its request was read."""


class _TryNext(Exception):
    """This worker failed before anything reached the client; try another."""

    def __init__(self, outcome: str, *, unhealthy: bool, answer: Answer | None = None) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.unhealthy = unhealthy
        self.answer = answer


class Proxy:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        pool: EndpointPool,
        router: Router,
        gate: AdmissionGate,
        session: aiohttp.ClientSession,
        metrics: GatewayMetrics,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._router = router
        self._gate = gate
        admission = settings.admission
        self._priority_header = admission.priority_header.lower().encode()
        self._tenant_header = admission.tenant_header.lower().encode()
        self._engine_priority = settings.upstream.engine_priority
        self._session = session
        self._metrics = metrics
        self._clock = clock
        self._rng = rng
        timeouts = settings.timeouts
        self._connect_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect_s)
        self._first_byte_s = timeouts.first_byte_s
        self._idle_s = timeouts.idle_stream_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = self._clock()
        route = ROUTES[scope["path"]]
        client = ClientSide(send)
        model, status = "", 500
        try:
            body = await self._read_body(scope, receive)
            ticket = self._admission_ticket(scope)
            request = inspect_request(
                body,
                block_chars=self._settings.scheduler.block_chars,
                session=header(scope, SESSION_HEADER),
                engine_priority=engine_priority(ticket[0]) if self._engine_priority else None,
            )
            self._check_model(request.model)
            model = request.model
            status = await self._serve_watching_disconnect(
                scope, receive, client, request, ticket, started
            )
        except _ClientGone:
            status = CLIENT_CLOSED
        except GatewayError as err:
            status = err.status
            if not client.started:
                await client.error(err)
        except Exception:
            log.exception("unexpected error on %s", scope["path"])
            if not client.started:
                await client.error(GatewayError("The gateway failed to handle the request."))
        finally:
            self._metrics.request_done(model, route, status, self._clock() - started)

    # -- request intake ----------------------------------------------------------------------
    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self._settings.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise RequestTooLarge(f"The request body exceeds {limit} bytes.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"The request body exceeds {limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not body:
            raise InvalidRequest("The request body is empty; expected a JSON object.")
        return body

    def _admission_ticket(self, scope: Scope) -> tuple[int, str]:
        """(priority, tenant) from the request's headers."""
        admission = self._settings.admission
        name = header(scope, self._priority_header) or admission.default_priority
        priority = admission.priorities.get(name)
        if priority is None:
            known = ", ".join(sorted(admission.priorities))
            raise InvalidRequest(
                f"Unknown priority {name!r}; use one of: {known}.", param=admission.priority_header
            )
        return priority, header(scope, self._tenant_header) or ""

    def _check_model(self, model: str) -> None:
        if (
            model in self._settings.models
            or model in self._pool.snapshot.known_models
            or model in self._settings.admission.scale_to_zero.models
        ):
            return
        raise ModelNotFound(f"The model `{model}` does not exist.", param="model")

    # -- dispatch ----------------------------------------------------------------------------
    async def _serve_watching_disconnect(
        self,
        scope: Scope,
        receive: Receive,
        client: ClientSide,
        request: ProxyRequest,
        ticket: tuple[int, str],
        started: float,
    ) -> int:
        """Serve, cancelling everything the moment the client disconnects."""
        task = asyncio.current_task()
        assert task is not None
        state = {"disconnected": False, "finishing": False}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state["finishing"]:
                state["disconnected"] = True
                task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await self._gate.enter(request.model, *ticket)
            try:
                return await self._dispatch(scope["path"], client, request, started, state)
            finally:
                self._gate.completed(request.model)
        except asyncio.CancelledError:
            if not state["disconnected"]:
                raise
            task.uncancel()
            return CLIENT_CLOSED
        finally:
            watcher.cancel()

    async def _dispatch(
        self,
        path: str,
        client: ClientSide,
        request: ProxyRequest,
        started: float,
        state: dict[str, bool],
    ) -> int:
        tried: list[str] = []
        last_answer: Answer | None = None
        for _ in range(self._settings.retries.max_attempts):
            context = RoutingContext(
                request=request.routing,
                snapshot=self._pool.snapshot,
                in_flight=self._pool.in_flight,
                now=self._clock(),
                max_age_s=self._settings.discovery.stale_after_s,
                exclude=tried,
                in_flight_tokens=self._pool.in_flight_tokens,
                gateway_replicas=self._settings.scheduler.gateway_replicas,
            )
            try:
                decision = self._router.route(context, self._rng)
            except NoEndpointAvailable:
                break
            url = decision.endpoint.url
            tried.append(url)
            self._metrics.routed(decision.queue_depth)
            tokens = request.routing.prompt_tokens
            self._pool.acquire(url, tokens)
            try:
                status, outcome = await self._attempt(url + path, client, request, started, state)
            except _TryNext as failed:
                self._metrics.attempt(url, failed.outcome)
                if failed.unhealthy:
                    self._pool.record_failure(url, failed.outcome)
                last_answer = failed.answer or last_answer
                continue
            finally:
                self._pool.release(url, tokens)
            self._metrics.attempt(url, outcome)
            return status
        if last_answer is not None:
            await client.answer(last_answer)
            return last_answer.status
        retry_after = str(self._settings.retries.retry_after_s)
        raise NoHealthyWorker(
            f"No healthy worker is available for model `{request.model}`; retry shortly.",
            headers={"Retry-After": retry_after},
        )

    async def _attempt(
        self,
        url: str,
        client: ClientSide,
        request: ProxyRequest,
        started: float,
        state: dict[str, bool],
    ) -> tuple[int, str]:
        """One worker's try: (status answered, attempt outcome) or :class:`_TryNext`."""
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
                        answer = Answer(response.status, headers, body)
                        if response.status == 503:
                            # A draining worker says so: stop routing to it before the next probe.
                            draining = DRAINING_HEADER in response.headers
                            raise _TryNext("http_503", unhealthy=draining, answer=answer)
                        state["finishing"] = True
                        await client.answer(answer)
                        clean = True
                        self._account_usage(request.model, usage_of_body(body))
                        status = response.status
                        return status, "ok" if status < 500 else f"http_{status}"
                    first = await response.content.readany()
                    if not first:
                        raise _TryNext("empty_stream", unhealthy=False)
                    deadline.reschedule(None)
            except _RETRIABLE_CONNECT as exc:
                raise _TryNext(type(exc).__name__, unhealthy=True) from None
            except aiohttp.ClientPayloadError:
                raise _TryNext("broken_response", unhealthy=True) from None
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
