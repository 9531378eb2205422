"""The gateway's ASGI application.

The three inference routes go straight to the raw-ASGI :class:`~gateway.proxy.Proxy`;
everything else (models, health, metrics) is an ordinary FastAPI app. The composition root
(:class:`~gateway.services.Services`) is built in the lifespan and kept on ``app.state``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError, RouteNotFound, error_body
from gateway.protocol import ROUTES
from gateway.services import Services
from gateway.settings import GatewaySettings


class GatewayApp:
    """Dispatches inference routes to the proxy and the rest to the control app."""

    def __init__(self, control: FastAPI) -> None:
        self.control = control
        self.running: Services | None = None

    @property
    def services(self) -> Services:
        """The running services (set by the lifespan while the app runs)."""
        if self.running is None:
            raise RuntimeError("the gateway's services are not running")
        return self.running

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in ROUTES:
            if scope["method"] == "POST":
                await self.services.proxy(scope, receive, send)
                return
            body = error_body(
                f"Method {scope['method']} is not allowed here; use POST.",
                "invalid_request_error",
                None,
                "method_not_allowed",
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 405,
                    "headers": [(b"content-type", b"application/json"), (b"allow", b"POST")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.control(scope, receive, send)


def create_app(
    settings: GatewaySettings,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> GatewayApp:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(settings, registry=registry, clock=clock)
        app.state.services = gateway.running = services
        try:
            yield
        finally:
            gateway.running = None
            await services.stop()

    control = FastAPI(title="Tidegate", lifespan=lifespan, docs_url=None, redoc_url=None)
    _add_control_routes(control)
    _add_error_handlers(control)
    gateway = GatewayApp(control)
    return gateway


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _add_control_routes(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        ready = _services(request).ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        services = _services(request)
        serving = services.pool.snapshot.serving(
            services.clock(), services.settings.discovery.stale_after_s
        )
        cards: dict[str, Any] = {}
        for endpoint in serving:
            for model in sorted(endpoint.models):
                card = endpoint.model_cards.get(model)
                cards.setdefault(model, dict(card) if card else _card(model))
        for model in services.settings.admission.scale_to_zero.models:  # even at zero replicas
            cards.setdefault(model, _card(model))
        return {"object": "list", "data": list(cards.values())}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        payload = generate_latest(_services(request).registry)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)


def _card(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": int(time.time()), "owned_by": "tidegate"}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            err: GatewayError = RouteNotFound(f"No route {request.method} {request.url.path}.")
            return Response(err.body(), status_code=404, media_type="application/json")
        body = error_body(str(exc.detail), "invalid_request_error", None, None)
        return Response(body, status_code=exc.status_code, media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        body = error_body(str(exc.errors()), "invalid_request_error", None, None)
        return Response(body, status_code=400, media_type="application/json")
