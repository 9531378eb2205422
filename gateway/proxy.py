"""The proxy path: a raw ASGI handler for the three inference routes.

Kept off FastAPI's router and validation on purpose (see docs/performance.md): it reads
the body, inspects the few fields it needs, asks the router for a worker, forwards the
client's bytes (with the engine priority set, when ``upstream.engine_priority`` is on) and
streams the worker's bytes back (one worker's try is ``gateway/upstream.py``). Failures
before the first byte reaches the client are retried on the next-best worker; a client that
leaves cancels the upstream request at once by closing its connection, which makes vLLM
abort it and free its KV blocks. Routing skips workers whose prefill backlog is at the
admission bound, while any other can take the request.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from gateway.admission import AdmissionGate
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoHealthyWorker,
    RequestTooLarge,
)
from gateway.exchange import Answer, ClientSide, header
from gateway.metrics import GatewayMetrics
from gateway.protocol import ROUTES, ProxyRequest, inspect_request
from gateway.settings import GatewaySettings
from gateway.upstream import PrefillClaim, TryNext, Upstream
from scheduler.admission import engine_priority
from scheduler.framework import NoEndpointAvailable, Router, RoutingContext
from scheduler.pool import EndpointPool
from scheduler.prefill import skipping_full

log = logging.getLogger(__name__)


CLIENT_CLOSED = 499
SESSION_HEADER = b"x-session-id"


class _ClientGone(Exception):
    """The client disconnected before its request was read."""


class Proxy:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        pool: EndpointPool,
        router: Router,
        gate: AdmissionGate,
        upstream: Upstream,
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
        self._upstream = upstream
        self._metrics = metrics
        self._clock = clock
        self._rng = rng

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
                return await self._dispatch(
                    scope["path"], client, request, ticket[0], started, state
                )
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
        priority: int,
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
                slow_start_s=self._settings.scheduler.slow_start_s,
            )
            context = skipping_full(context, self._gate.prefill_full(priority))
            try:
                decision = self._router.route(context, self._rng)
            except NoEndpointAvailable:
                break
            url = decision.endpoint.url
            tried.append(url)
            self._metrics.routed(decision.queue_depth)
            tokens = request.routing.prompt_tokens
            self._pool.acquire(url, tokens)
            prefill = PrefillClaim(self._pool, url, tokens, self._gate.prefill_done)
            try:
                status, outcome = await self._upstream.attempt(
                    url + path, client, request, started, state, prefill
                )
            except TryNext as failed:
                self._metrics.attempt(url, failed.outcome)
                if failed.unhealthy:
                    self._pool.record_failure(url, failed.outcome)
                last_answer = failed.answer or last_answer
                continue
            finally:
                self._pool.release(url, tokens)
                prefill.release()  # after the slot: a held request it wakes sees both freed
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
