"""The simulated worker's HTTP surface: a small raw ASGI app shaped like vLLM's server.

A raw ASGI callable (no framework, no response models) keeps per-request overhead low
enough to benchmark a gateway against. This module only translates HTTP to engine calls
and engine output to vLLM's wire format; when tokens appear is the engine's decision.
A client that goes away is noticed through ``http.disconnect`` on the receive channel,
watched concurrently, and aborts the request at once.

Draining (on SIGTERM, see ``workers.sim.cli``): ``/health`` answers 503 and new inference
requests get vLLM's 503 error body at once, so a gateway retries them elsewhere, while
requests already running finish; ``drained()`` says when none are left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from workers.sim import embeddings, protocol
from workers.sim.asgi import (
    SSE_HEADER,
    AbortOnDisconnect,
    Receive,
    Scope,
    Send,
    lifespan,
    read_body,
    send_bytes,
    send_chunk,
    send_json,
)
from workers.sim.clock import Clock, LoopClock
from workers.sim.engine import Engine, GenerationRequest, GenerationStream
from workers.sim.engines import build_engine
from workers.sim.errors import BadRequestError, ServiceUnavailableError, SimRequestError
from workers.sim.metrics import RequestStats, register_metrics
from workers.sim.parsing import (
    GenerationParams,
    check_context,
    check_model,
    parse_chat,
    parse_completion,
    parse_embedding,
    parse_json_object,
)
from workers.sim.prefix import chain_block_hashes
from workers.sim.profiles import ProfileRegistry
from workers.sim.settings import SimSettings
from workers.sim.tokens import output_text

Handler = Callable[[Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class SimServices:
    """Everything one worker is wired from; built once by ``create_app``."""

    settings: SimSettings
    engine: Engine
    stats: RequestStats
    registry: CollectorRegistry
    wall_clock: Callable[[], float]


def create_app(
    settings: SimSettings,
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    wall_clock: Callable[[], float] = time.time,
    profiles: ProfileRegistry | None = None,
) -> SimApp:
    """Build a worker app; metrics go on ``registry`` (a fresh one when not given).

    Without ``settings.profile`` the engine is the fixed-delay one; with it, the batching
    model of that profile (looked up in ``profiles``, the built-ins by default, plus
    ``settings.profile_file``)."""
    registry = CollectorRegistry() if registry is None else registry
    stats = RequestStats(max_model_len=settings.max_model_len)
    engine, cache_info = build_engine(
        settings, clock=LoopClock() if clock is None else clock, observer=stats, profiles=profiles
    )
    register_metrics(
        registry,
        model_name=settings.model,
        snapshot=engine.snapshot,
        stats=stats,
        cache_info=cache_info,
    )
    return SimApp(SimServices(settings, engine, stats, registry, wall_clock))


class SimApp:
    """The ASGI callable."""

    def __init__(self, services: SimServices) -> None:
        self.services = services
        self.draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._routes: dict[str, tuple[str, Handler]] = {
            "/health": ("GET", self._health),
            "/version": ("GET", self._version),
            "/v1/models": ("GET", self._models),
            "/metrics": ("GET", self._metrics),
            "/v1/chat/completions": ("POST", self._chat),
            "/v1/completions": ("POST", self._completions),
            "/v1/embeddings": ("POST", self._embeddings),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self._routes.get(scope["path"])
            # HEAD is served as GET; uvicorn leaves the body out.
            method = "GET" if scope["method"] == "HEAD" else scope["method"]
            if route is None:
                await send_json(send, 404, {"detail": "Not Found"})
            elif route[0] != method:
                await send_json(send, 405, {"detail": "Method Not Allowed"})
            else:
                await route[1](receive, send)
        elif scope["type"] == "lifespan":
            await lifespan(receive, send)

    # -- simple routes -----------------------------------------------------------------

    # -- draining ------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Generation requests being served now."""
        return self._in_flight

    def begin_drain(self) -> None:
        """From now on refuse new work; running requests carry on."""
        self.draining = True

    async def drained(self, timeout_s: float) -> bool:
        """Wait until no generation request is in flight; False if ``timeout_s`` passed
        first."""
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _refuse_if_draining(self, send: Send) -> bool:
        if not self.draining:
            return False
        error = ServiceUnavailableError()
        await send_json(send, error.status, error.body())
        return True

    # -- simple routes -----------------------------------------------------------------

    async def _health(self, receive: Receive, send: Send) -> None:
        await send_bytes(send, 503 if self.draining else 200, b"", ())

    async def _version(self, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"version": protocol.VLLM_VERSION})

    async def _models(self, receive: Receive, send: Send) -> None:
        s = self.services
        payload = protocol.model_list(
            model=s.settings.model,
            max_model_len=s.settings.max_model_len,
            created=int(s.wall_clock()),
        )
        await send_json(send, 200, payload)

    async def _metrics(self, receive: Receive, send: Send) -> None:
        body = generate_latest(self.services.registry)
        await send_bytes(send, 200, body, ((b"content-type", CONTENT_TYPE_LATEST.encode()),))

    # -- generation ----------------------------------------------------------------------

    async def _chat(self, receive: Receive, send: Send) -> None:
        await self._generate(receive, send, chat=True)

    async def _completions(self, receive: Receive, send: Send) -> None:
        await self._generate(receive, send, chat=False)

    async def _generate(self, receive: Receive, send: Send, *, chat: bool) -> None:
        s = self.services
        raw = await read_body(receive)
        if raw is None or await self._refuse_if_draining(send):
            return
        try:
            body = parse_json_object(raw)
            params = parse_chat(body) if chat else parse_completion(body)
            check_model(params.model, s.settings.model)
            check_context(params, s.settings.max_model_len)
            self._check_priority(params.priority)
        except SimRequestError as exc:
            await send_json(send, exc.status, exc.body())
            return
        request_id = protocol.random_id("chatcmpl-" if chat else "cmpl-")
        block_size = s.engine.prefix_block_size
        stream = s.engine.submit(
            GenerationRequest(
                request_id=request_id,
                prompt_tokens=params.prompt_tokens,
                max_tokens=params.max_tokens,
                ignore_eos=params.ignore_eos,
                priority=params.priority,
                block_hashes=(
                    None
                    if block_size is None
                    else chain_block_hashes(params.prompt_token_ids(), block_size)
                ),
            )
        )
        created = int(s.wall_clock())
        self._in_flight += 1
        self._idle.clear()
        try:
            async with AbortOnDisconnect(receive, stream):
                if params.stream:
                    await self._send_stream(send, stream, params, chat, request_id, created)
                else:
                    await self._send_whole(send, stream, params, chat, request_id, created)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    def _check_priority(self, priority: int) -> None:
        """vLLM's check, made before a request reaches its engine: only the ``priority``
        scheduling policy takes a non-zero priority."""
        if priority and self.services.settings.scheduling_policy != "priority":
            raise BadRequestError(
                f"Got priority {priority} but Priority scheduling is not enabled."
            )

    async def _send_whole(
        self,
        send: Send,
        stream: GenerationStream,
        params: GenerationParams,
        chat: bool,
        request_id: str,
        created: int,
    ) -> None:
        output = await stream.collect()
        build = protocol.chat_response if chat else protocol.completion_response
        payload = build(
            request_id=request_id,
            created=created,
            model=self.services.settings.model,
            text=output_text(0, output.end),
            finish_reason=output.finish_reason,
            prompt_tokens=params.prompt_tokens,
            completion_tokens=output.end,
        )
        await send_json(send, 200, payload)

    async def _send_stream(
        self,
        send: Send,
        stream: GenerationStream,
        params: GenerationParams,
        chat: bool,
        request_id: str,
        created: int,
    ) -> None:
        formatter = protocol.StreamFormatter(
            chat=chat,
            request_id=request_id,
            created=created,
            model=self.services.settings.model,
            prompt_tokens=params.prompt_tokens,
            include_usage=params.include_usage,
            continuous_usage=params.continuous_usage,
        )
        await send({"type": "http.response.start", "status": 200, "headers": [SSE_HEADER]})
        # As vLLM does, chat's role chunk goes out with the first token, not before it: a
        # client (or a gateway timing TTFT from the first event) sees nothing until prefill.
        opening = formatter.opening()
        produced = 0
        async for chunk in stream:
            if opening is not None:
                await send_chunk(send, opening)
                opening = None
            produced = chunk.end
            text = output_text(chunk.start, chunk.num_tokens)
            await send_chunk(send, formatter.delta(text, chunk.finish_reason, produced))
        if opening is not None:
            await send_chunk(send, opening)
        if formatter.include_usage:
            await send_chunk(send, formatter.usage_event(produced))
        await send({"type": "http.response.body", "body": protocol.SSE_DONE})

    # -- embeddings ----------------------------------------------------------------------

    async def _embeddings(self, receive: Receive, send: Send) -> None:
        s = self.services
        raw = await read_body(receive)
        if raw is None or await self._refuse_if_draining(send):
            return
        try:
            params = parse_embedding(parse_json_object(raw))
            check_model(params.model, s.settings.model)
            self._check_priority(params.priority)
            dim = s.settings.embedding_dim
            if params.dimensions is not None and params.dimensions != dim:
                raise BadRequestError(
                    "Model does not support matryoshka representation, changing output "
                    "dimensions will lead to poor results.",
                    param="dimensions",
                )
            longest = max(params.prompt_tokens)
            if longest > s.settings.max_model_len:
                raise BadRequestError(
                    f"This model's maximum context length is {s.settings.max_model_len} "
                    f"tokens. However, you requested {longest} tokens in the input for "
                    "embedding generation. Please reduce the length of the input.",
                    param="input_tokens",
                )
        except SimRequestError as exc:
            await send_json(send, exc.status, exc.body())
            return
        vectors = [embeddings.embed(key, dim) for key in params.keys]
        encoded = (
            [embeddings.to_base64(v) for v in vectors]
            if params.encoding_format == "base64"
            else vectors
        )
        payload = protocol.embedding_response(
            request_id=protocol.random_id("embd-"),
            created=int(s.wall_clock()),
            model=s.settings.model,
            embeddings=encoded,
            prompt_tokens=sum(params.prompt_tokens),
        )
        await send_json(send, 200, payload)
