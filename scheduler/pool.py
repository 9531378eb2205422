"""The endpoint pool: the one mutable record of what the gateway knows about its workers.

Probes write into it, requests count themselves in and out of it, and decisions read an
immutable :class:`PoolSnapshot` from it. It does no I/O and reads no clock: callers pass
the time of each observation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler.endpoint import Endpoint, EngineStats, PoolSnapshot


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one successful probe of a worker found."""

    models: frozenset[str]
    stats: Mapping[str, EngineStats] = field(default_factory=dict)
    model_cards: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class EndpointPool:
    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self._in_flight: dict[str, int] = {}
        self._in_flight_tokens: dict[str, int] = {}
        self._prefill_tokens: dict[str, int] = {}
        self._snapshot = PoolSnapshot()

    # -- membership (fed by discovery) ---------------------------------------------------
    def set_urls(self, urls: Iterable[str]) -> None:
        """Make the pool hold exactly ``urls``; known endpoints keep their state."""
        wanted = list(dict.fromkeys(urls))
        self._endpoints = {url: self._endpoints.get(url) or Endpoint(url=url) for url in wanted}
        for url in wanted:
            self._in_flight.setdefault(url, 0)
            self._prefill_tokens.setdefault(url, 0)
        self._rebuild()

    # -- observations (fed by probes and by the proxy) --------------------------------------
    def record_probe(self, url: str, result: ProbeResult, now: float) -> None:
        current = self._endpoints.get(url)
        if current is None:
            return
        self._endpoints[url] = dataclasses.replace(
            current,
            healthy=True,
            scraped_at=now,
            healthy_since=(
                current.healthy_since
                if current.healthy and current.healthy_since is not None
                else now
            ),
            # A probe that could not list models keeps the last known list.
            models=result.models or current.models,
            stats=result.stats,
            model_cards=result.model_cards or current.model_cards,
            last_error=None,
        )
        self._rebuild()

    def record_failure(self, url: str, reason: str) -> None:
        """A probe or a proxied request could not reach the worker: stop routing to it."""
        current = self._endpoints.get(url)
        if current is None or (not current.healthy and current.last_error == reason):
            return
        self._endpoints[url] = dataclasses.replace(
            current, healthy=False, healthy_since=None, last_error=reason
        )
        self._rebuild()

    # -- in-flight accounting ------------------------------------------------------------------
    def acquire(self, url: str, tokens: int = 0) -> None:
        """Count a request (and its estimated prompt tokens) in flight to ``url``."""
        self._in_flight[url] = self._in_flight.get(url, 0) + 1
        self._in_flight_tokens[url] = self._in_flight_tokens.get(url, 0) + tokens

    def release(self, url: str, tokens: int = 0) -> None:
        count = self._in_flight.get(url, 0) - 1
        left = self._in_flight_tokens.get(url, 0) - tokens
        if count > 0 or url in self._endpoints:
            self._in_flight[url] = max(count, 0)
            self._in_flight_tokens[url] = max(left, 0) if count > 0 else 0
        else:
            self._in_flight.pop(url, None)
            self._in_flight_tokens.pop(url, None)

    def start_prefill(self, url: str, tokens: int) -> None:
        """Count ``tokens`` of prompt sent to ``url`` that have no first token back yet."""
        self._prefill_tokens[url] = self._prefill_tokens.get(url, 0) + tokens

    def end_prefill(self, url: str, tokens: int) -> None:
        """Their first token (or the whole answer, or a failure) came back."""
        left = max(self._prefill_tokens.get(url, 0) - tokens, 0)
        if left > 0 or url in self._endpoints:
            self._prefill_tokens[url] = left
        else:
            self._prefill_tokens.pop(url, None)

    # -- reads ------------------------------------------------------------------------------------
    @property
    def snapshot(self) -> PoolSnapshot:
        return self._snapshot

    @property
    def in_flight_tokens(self) -> Mapping[str, int]:
        """Live view of the prompt tokens in flight per endpoint (same rules as in_flight)."""
        return self._in_flight_tokens

    @property
    def prefill_tokens(self) -> Mapping[str, int]:
        """Live view of each endpoint's prefill backlog: prompt tokens sent to it that have
        no first token back yet (same reading rules as in_flight)."""
        return self._prefill_tokens

    @property
    def in_flight(self) -> Mapping[str, int]:
        """Live view of in-flight counts; read it synchronously, do not hold it across awaits."""
        return self._in_flight

    def _rebuild(self) -> None:
        self._snapshot = PoolSnapshot(endpoints=tuple(self._endpoints.values()))
