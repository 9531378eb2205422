"""The pure half of the prefix-index exchange between gateway replicas.

Each replica learns a prefix index from its own routing decisions only, so behind a
balancer every replica sees a third (with three) of the traffic and its index misses most
of what the workers cache. Replicas therefore swap their decisions: each buffers what it
observed (``endpoint URL + prefix block hashes``), publishes that in batches every second
or so, and merges the batches other replicas publish into its own index. Routing never
waits on it: a decision reads the local index as it is, and what a peer decided arrives
a batch later (docs/routing.md, "Three gateway replicas").

This module holds the records, their bounded buffer, the wire encoding and the merge; the
transport (Redis pub/sub) is :mod:`gateway.prefix_exchange`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import orjson

from scheduler.endpoint import Endpoint
from scheduler.framework import Router, RoutingContext

WIRE_VERSION = 1
MAX_BLOCK_HASH = 2**32 - 1
"""Block hashes are chained CRC-32s (:func:`scheduler.request.prefix_blocks`)."""


class BatchError(ValueError):
    """A batch from the wire is malformed or over its bounds; it is dropped whole."""


@runtime_checkable
class PrefixLearner(Protocol):
    """A plugin that learns where prefixes were sent and can take peers' decisions."""

    def merge(self, url: str, blocks: Sequence[int]) -> None: ...


@dataclass(frozen=True, slots=True)
class PrefixRecord:
    """One routing decision as the exchange carries it: these blocks went to ``url``."""

    url: str
    blocks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PrefixBatch:
    """Records one replica publishes at once, tagged with its id so it skips its own."""

    replica: str
    records: tuple[PrefixRecord, ...]


class ObservationBuffer:
    """Routing decisions waiting to be published, at most ``capacity`` records.

    An :class:`~scheduler.framework.Observer`: routing appends to it synchronously (no I/O)
    and the publisher takes from it. When full the oldest record is dropped and counted,
    so a replica that cannot publish (Redis down) holds bounded memory.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._records: deque[PrefixRecord] = deque(maxlen=capacity)
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._records)

    def observe(self, ctx: RoutingContext, chosen: Endpoint) -> None:
        self.add(PrefixRecord(chosen.url, ctx.request.prefix_blocks))

    def add(self, record: PrefixRecord) -> None:
        if not record.blocks:
            return
        if len(self._records) == self._records.maxlen:
            self.dropped += 1
        self._records.append(record)

    def take(self, limit: int) -> tuple[PrefixRecord, ...]:
        """Remove and return up to ``limit`` records, oldest first."""
        count = min(limit, len(self._records))
        return tuple(self._records.popleft() for _ in range(count))


def encode_batch(batch: PrefixBatch) -> bytes:
    """Compact JSON: ``{"v": 1, "replica": id, "records": [[url, [block, ...]], ...]}``."""
    return orjson.dumps(
        {
            "v": WIRE_VERSION,
            "replica": batch.replica,
            "records": [[r.url, r.blocks] for r in batch.records],
        }
    )


def decode_batch(data: bytes | str, *, max_records: int, max_blocks: int) -> PrefixBatch:
    """Parse and check a batch from the wire; :class:`BatchError` if it is not one."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BatchError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict) or payload.get("v") != WIRE_VERSION:
        raise BatchError(f"not a version {WIRE_VERSION} batch")
    replica, records = payload.get("replica"), payload.get("records")
    if not isinstance(replica, str) or not replica:
        raise BatchError("the batch names no replica")
    if not isinstance(records, list):
        raise BatchError("records must be a list")
    if len(records) > max_records:
        raise BatchError(f"{len(records)} records, more than the {max_records} allowed")
    return PrefixBatch(replica, tuple(_record(r, max_blocks) for r in records))


def _record(raw: object, max_blocks: int) -> PrefixRecord:
    if not (isinstance(raw, list) and len(raw) == 2):
        raise BatchError("a record must be [url, [block, ...]]")
    url, blocks = raw
    if not isinstance(url, str) or not url:
        raise BatchError("a record's url must be a non-empty string")
    if not isinstance(blocks, list) or len(blocks) > max_blocks:
        raise BatchError(f"a record's blocks must be a list of at most {max_blocks}")
    for block in blocks:
        if type(block) is not int or not 0 <= block <= MAX_BLOCK_HASH:
            raise BatchError(f"block hash {block!r} is not a 32-bit unsigned integer")
    return PrefixRecord(url, tuple(blocks))


def prefix_learners(router: Router) -> tuple[PrefixLearner, ...]:
    """The router's plugins that take peers' decisions (profiles share plugins: each once)."""
    unique: dict[int, PrefixLearner] = {}
    for profile in router.profiles.values():
        for observer in profile.observers:
            if isinstance(observer, PrefixLearner):
                unique.setdefault(id(observer), observer)
    return tuple(unique.values())


def merge_batch(learners: Iterable[PrefixLearner], batch: PrefixBatch, *, own_replica: str) -> int:
    """Apply another replica's records to every learner; returns the records merged (0 for
    this replica's own batch, which its index already holds)."""
    if batch.replica == own_replica:
        return 0
    learners = tuple(learners)
    for record in batch.records:
        for learner in learners:
            learner.merge(record.url, record.blocks)
    return len(batch.records)
