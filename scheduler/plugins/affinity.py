"""Affinity plugins: send related requests where their KV cache already is.

- :class:`PrefixIndexScorer` remembers, per endpoint, the prefix blocks this gateway sent
  there (LRU-bounded) and scores the share of a prompt's blocks an endpoint likely caches.
- :class:`RendezvousScorer` places a key (a prompt's prefix group, or a session) on one
  endpoint by rendezvous hashing. Every gateway replica computes the same placement from
  the same endpoint list, with no shared state, so affinity survives scaling the gateway
  out. Paired with :class:`~scheduler.plugins.load.LoadCeilingFilter` this is consistent
  hashing with bounded loads: an over-loaded home is filtered out and the key's next
  endpoint in rendezvous order (the same for every replica) takes it.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from scheduler.endpoint import Endpoint
from scheduler.framework import RoutingContext


@dataclass
class PrefixIndexScorer:
    """Approximate per-endpoint prefix index; memory bounded to ``capacity`` blocks each."""

    capacity: int = 50_000
    _index: dict[str, OrderedDict[int, None]] = field(default_factory=dict)

    def score(self, ctx: RoutingContext, candidates: Sequence[Endpoint]) -> Sequence[float]:
        blocks = ctx.request.prefix_blocks
        if not blocks:
            return [0.0] * len(candidates)
        scores = []
        for endpoint in candidates:
            cached = self._index.get(endpoint.url)
            matched = 0
            if cached:
                for block in blocks:
                    if block not in cached:
                        break
                    matched += 1
            scores.append(matched / len(blocks))
        return scores

    def observe(self, ctx: RoutingContext, chosen: Endpoint) -> None:
        self.merge(chosen.url, ctx.request.prefix_blocks)

    def merge(self, url: str, blocks: Sequence[int]) -> None:
        """Learn that ``url`` was sent these blocks: by this replica (:meth:`observe`) or,
        through the prefix exchange, by another gateway replica."""
        if not blocks:
            return
        cached = self._index.setdefault(url, OrderedDict())
        for block in blocks:
            cached[block] = None
            cached.move_to_end(block)
        while len(cached) > self.capacity:
            cached.popitem(last=False)

    def blocks_held(self, url: str) -> int:
        return len(self._index.get(url, ()))


@dataclass
class PrefixCostScorer:
    """Prefers the endpoint where the request's prefill would finish first.

    Estimated cost on an endpoint = prompt tokens already in flight there (work queued
    ahead) + the part of this prompt the endpoint probably does not cache (from its prefix
    index). One number weighs affinity against load, so a warm but busy worker loses to a
    cold idle one exactly when recomputing the prompt is cheaper than waiting.
    """

    capacity: int = 50_000
    _index: PrefixIndexScorer = field(init=False)

    def __post_init__(self) -> None:
        self._index = PrefixIndexScorer(capacity=self.capacity)

    def score(self, ctx: RoutingContext, candidates: Sequence[Endpoint]) -> Sequence[float]:
        prompt = ctx.request.prompt_tokens
        matches = self._index.score(ctx, candidates)
        costs = [
            ctx.in_flight_tokens_of(e) + (1.0 - match) * prompt
            for e, match in zip(candidates, matches, strict=True)
        ]
        low, high = min(costs), max(costs)
        if high <= low:
            return [1.0] * len(costs)
        return [(high - c) / (high - low) for c in costs]

    def observe(self, ctx: RoutingContext, chosen: Endpoint) -> None:
        self._index.observe(ctx, chosen)

    def merge(self, url: str, blocks: Sequence[int]) -> None:
        self._index.merge(url, blocks)


@dataclass
class RendezvousScorer:
    """Scores 1 for the key's home among the candidates (highest rendezvous hash), else 0.

    ``key="prefix"`` uses the hash of the prompt's first ``group_blocks`` blocks (the
    block hash at that depth names the whole prefix up to it), so a conversation's turns
    and requests sharing a long system prompt meet on one worker. ``key="session"`` uses
    the request's session key. Requests without a key score 0 everywhere.
    """

    key: Literal["prefix", "session"] = "prefix"
    group_blocks: int = 4
    _url_bytes: dict[str, bytes] = field(default_factory=dict)

    def score(self, ctx: RoutingContext, candidates: Sequence[Endpoint]) -> Sequence[float]:
        key = self._key(ctx)
        scores = [0.0] * len(candidates)
        if key is None:
            return scores
        best, best_index = -1, -1
        for i, endpoint in enumerate(candidates):
            encoded = self._url_bytes.get(endpoint.url)
            if encoded is None:
                encoded = self._url_bytes[endpoint.url] = endpoint.url.encode()
            weight = zlib.crc32(encoded, key)
            if weight > best:
                best, best_index = weight, i
        scores[best_index] = 1.0
        return scores

    def _key(self, ctx: RoutingContext) -> int | None:
        if self.key == "session":
            session = ctx.request.session
            return zlib.crc32(session.encode()) if session else None
        blocks = ctx.request.prefix_blocks
        if not blocks:
            return None
        return blocks[min(len(blocks), self.group_blocks) - 1]
