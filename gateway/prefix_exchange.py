"""Redis transport of the prefix-index exchange between gateway replicas.

Routing appends each decision to an :class:`~scheduler.prefix_exchange.ObservationBuffer`
(synchronous, no I/O). A background task publishes the buffer in batches every
``interval_s`` on a Redis pub/sub channel and merges the batches the other replicas publish
into this replica's prefix index. Nothing here is on the request path: while Redis is down
or unreachable the task logs, counts the failure, keeps retrying with backoff, and routing
goes on with the local index alone. Imported only by a gateway that enables the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from gateway.settings import PrefixExchangeSettings, RedisSettings
from scheduler.prefix_exchange import (
    BatchError,
    ObservationBuffer,
    PrefixBatch,
    PrefixLearner,
    decode_batch,
    encode_batch,
    merge_batch,
)
from scheduler.probe import cancel_and_wait

log = logging.getLogger(__name__)

_FIRST_RETRY_S = 0.1


class ExchangeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        prefix = "tidegate_prefix_exchange"
        self.published = Counter(
            f"{prefix}_published_records", "routing decisions published", registry=registry
        )
        self.merged = Counter(
            f"{prefix}_merged_records",
            "other replicas' routing decisions merged into the prefix index",
            registry=registry,
        )
        self.dropped = Counter(
            f"{prefix}_dropped_records",
            "decisions not exchanged: buffer full (oldest dropped), publish failed, or "
            "a peer's batch rejected as malformed (counted once per batch)",
            ["reason"],
            registry=registry,
        )
        self.errors = Counter(
            f"{prefix}_errors", "Redis connection or command failures", registry=registry
        )
        self.connected = Gauge(
            f"{prefix}_connected", "1 while subscribed to the exchange channel", registry=registry
        )


class PrefixExchange:
    """Publishes this replica's decisions and merges the others'; owns one background task."""

    def __init__(
        self,
        settings: PrefixExchangeSettings,
        redis: RedisSettings,
        buffer: ObservationBuffer,
        learners: Sequence[PrefixLearner],
        registry: CollectorRegistry,
    ) -> None:
        self.settings = settings
        self.replica = settings.replica_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._redis = redis
        self._buffer = buffer
        self._learners = tuple(learners)
        self.metrics = ExchangeMetrics(registry)
        self._dropped_seen = 0
        self._retry_s = _FIRST_RETRY_S
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tidegate-prefix-exchange")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self.metrics.connected.set(0)

    async def _run(self) -> None:
        while True:
            try:
                await self._connected_session()
            except Exception as exc:
                self.metrics.errors.inc()
                self.metrics.connected.set(0)
                log.warning(
                    "prefix exchange: Redis failed (%s); routing on the local index, "
                    "retrying in %.1fs",
                    _reason(exc),
                    self._retry_s,
                )
            await asyncio.sleep(self._retry_s)
            self._retry_s = min(self._retry_s * 2, self.settings.reconnect_max_s)

    async def _connected_session(self) -> None:
        """Subscribe, then publish and receive until either fails (it raises)."""
        client = Redis.from_url(
            self._redis.url,
            socket_connect_timeout=self._redis.connect_timeout_s,
            socket_keepalive=True,
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.settings.channel)
            self.metrics.connected.set(1)
            self._retry_s = _FIRST_RETRY_S
            log.info("prefix exchange: replica %s on %s", self.replica, self.settings.channel)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._publish_forever(client))
                tasks.create_task(self._receive_forever(pubsub))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()

    async def _publish_forever(self, client: Redis) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_s)
            self._count_buffer_drops()
            if not len(self._buffer):
                await client.ping()  # notice a dead server while there is nothing to send
            while records := self._buffer.take(self.settings.max_batch):
                message = encode_batch(PrefixBatch(self.replica, records))
                try:
                    await client.publish(self.settings.channel, message)
                except Exception:
                    self.metrics.dropped.labels("publish_failed").inc(len(records))
                    raise
                self.metrics.published.inc(len(records))

    async def _receive_forever(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                batch = decode_batch(
                    message["data"],
                    max_records=self.settings.max_batch,
                    max_blocks=self.settings.max_blocks,
                )
            except BatchError as exc:
                self.metrics.dropped.labels("malformed").inc()
                log.warning("prefix exchange: dropped a batch: %s", exc)
                continue
            merged = merge_batch(self._learners, batch, own_replica=self.replica)
            self.metrics.merged.inc(merged)
        raise ConnectionError("the subscription ended")

    def _count_buffer_drops(self) -> None:
        dropped = self._buffer.dropped
        if dropped > self._dropped_seen:
            self.metrics.dropped.labels("buffer_full").inc(dropped - self._dropped_seen)
            self._dropped_seen = dropped


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
