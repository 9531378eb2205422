"""Admission and flow control: when the pool is full, who waits, in what order, and who
is turned away at once.

Pure and synchronous: the gateway's adapter (``gateway/admission.py``) owns the waiting
and the clock. Saturation is a number (>= 1 means full), computed from each worker's queue
and KV use, and optionally from the prompt tokens this gateway has sent it that have not
yet had their first token back (its prefill backlog, known live); a worker whose data is
stale counts as full. The queue is ordered by priority, then shared round-robin between
tenants, then first come first served. A request is shed
(429 with Retry-After) when the queue is full, when it is sheddable and the pool is full,
or when its predicted wait alone would break the TTFT SLO.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from scheduler.endpoint import Endpoint, PoolSnapshot


@dataclass(frozen=True, slots=True)
class SaturationPolicy:
    queue_threshold: float = 8.0
    """Waiting requests on a worker that make it full."""
    kv_threshold: float = 0.95
    """KV-cache use that makes a worker full."""
    max_running: int | None = None
    """Requests a worker runs at once (its max_num_seqs), if known: our in-flight count
    beyond it is queueing the worker has not reported yet."""
    priority_headroom: tuple[tuple[int, int], ...] = ()
    """(priority, requests): a request of at least that priority may have this many more
    in flight per worker than ``max_running``. Holding the rest below the engine's
    ``max_num_seqs`` leaves it free slots that urgent requests take at once."""
    slots_only_at_or_above: int | None = None
    """Requests of at least this priority are admitted on free slots alone (our in-flight
    count against ``max_running`` plus their headroom, and ``max_prefill_tokens`` if set),
    whatever the engines' queues and KV use: engines scheduling by priority put them ahead
    of everything those measure."""
    slots_only: bool = False
    """Set by :meth:`for_priority` for such a request."""
    max_prefill_tokens: int | None = None
    """Prompt tokens a worker may have waiting for their first token (sent by us, no first
    token back yet) before it counts as full, for every priority. An engine prefills that
    backlog in the steps it runs next, so bounding it bounds how long those steps are: the
    step an urgent request waits out on arrival and the step it is prefilled in stay
    short. Unlike the engine's queue, the gateway knows this number live."""

    def __post_init__(self) -> None:
        if self.max_prefill_tokens is not None and self.max_prefill_tokens < 1:
            raise ValueError(f"max_prefill_tokens is {self.max_prefill_tokens}; it must be >= 1")

    def for_priority(self, priority: int) -> SaturationPolicy:
        """The policy a request of ``priority`` is admitted under."""
        extra = max((n for p, n in self.priority_headroom if priority >= p), default=0)
        slots_only = (
            self.slots_only_at_or_above is not None and priority >= self.slots_only_at_or_above
        )
        if (not extra or self.max_running is None) and not slots_only:
            return self
        running = None if self.max_running is None else self.max_running + extra
        return replace(self, max_running=running, priority_headroom=(), slots_only=slots_only)


def prefill_saturation(prefill_tokens: int, policy: SaturationPolicy) -> float:
    """How full a worker's prefill backlog is (0 when the policy sets no bound)."""
    if policy.max_prefill_tokens is None:
        return 0.0
    return prefill_tokens / policy.max_prefill_tokens


def endpoint_saturation(
    endpoint: Endpoint,
    model: str,
    in_flight: int,
    now: float,
    max_age_s: float,
    policy: SaturationPolicy,
    prefill_tokens: int = 0,
) -> float:
    if not endpoint.fresh(now, max_age_s):
        return math.inf
    backlog = prefill_saturation(prefill_tokens, policy)
    if policy.slots_only:
        slots = in_flight / policy.max_running if policy.max_running else 0.0
        return max(slots, backlog)
    stats = endpoint.stats.get(model)
    waiting = stats.waiting if stats is not None else 0.0
    kv = stats.kv_cache_usage if stats is not None else 0.0
    if policy.max_running is not None:
        waiting = max(waiting, in_flight - policy.max_running)
    return max(waiting / policy.queue_threshold, kv / policy.kv_threshold, backlog)


def pool_saturation(
    snapshot: PoolSnapshot,
    in_flight: Mapping[str, int],
    model: str,
    now: float,
    max_age_s: float,
    policy: SaturationPolicy,
    prefill_tokens: Mapping[str, int] | None = None,
) -> float:
    """The least saturated worker serving the model: the pool has room while any does.
    ``prefill_tokens``: per worker, the prompt tokens sent that have no first token yet."""
    backlog = prefill_tokens or {}
    best = math.inf
    for endpoint in snapshot.endpoints:
        if model in endpoint.models:
            value = endpoint_saturation(
                endpoint,
                model,
                in_flight.get(endpoint.url, 0),
                now,
                max_age_s,
                policy,
                backlog.get(endpoint.url, 0),
            )
            best = min(best, value)
    return best


def engine_priority(priority: int) -> int:
    """The ``priority`` to forward to a vLLM engine run with ``--scheduling-policy
    priority``, where lower values are served first: ours are higher-is-more-urgent."""
    return -priority


@dataclass(eq=False)
class Ticket:
    """One request waiting for admission."""

    priority: int
    tenant: str
    arrived: float
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Shed:
    reason: str
    retry_after_s: float


class AdmissionQueue:
    """Bounded priority queue with round-robin fairness between tenants of a priority."""

    def __init__(
        self,
        *,
        max_queue: int,
        ttft_slo_s: float,
        rate_halflife_s: float = 10.0,
        min_rate_samples: int = 20,
    ) -> None:
        self._max_queue = max_queue
        self._ttft_slo_s = ttft_slo_s
        self._levels: dict[int, _Level] = {}
        self._size = 0
        self._seq = itertools.count()
        self._rate = _RateEstimate(rate_halflife_s, min_rate_samples)

    def __len__(self) -> int:
        return self._size

    def offer(self, ticket: Ticket, now: float) -> Shed | None:
        """Queue the ticket, or say why it is shed instead."""
        if self._size >= self._max_queue:
            return Shed("queue_full", self.retry_after(now))
        ahead = self.waiting_at_or_above(ticket.priority)
        wait = self._rate.seconds_for(ahead + 1, now)
        if wait is not None and wait > self._ttft_slo_s:
            return Shed("predicted_wait", max(1.0, wait - self._ttft_slo_s))
        ticket.seq = next(self._seq)
        self._levels.setdefault(ticket.priority, _Level()).push(ticket)
        self._size += 1
        return None

    def waiting_at_or_above(self, priority: int) -> int:
        """Held requests that would go before a new one of ``priority``."""
        return sum(len(lv) for p, lv in self._levels.items() if p >= priority)

    def peek(self) -> Ticket | None:
        """The ticket ``pop`` would return, left in place."""
        if not self._levels:
            return None
        return self._levels[max(self._levels)].peek()

    def pop(self) -> Ticket | None:
        for priority in sorted(self._levels, reverse=True):
            level = self._levels[priority]
            ticket = level.pop()
            if ticket is not None:
                self._size -= 1
                if not level:
                    del self._levels[priority]
                return ticket
        return None

    def remove(self, ticket: Ticket) -> bool:
        """Take a ticket out (its client left, or it waited too long)."""
        level = self._levels.get(ticket.priority)
        if level is None or not level.remove(ticket):
            return False
        self._size -= 1
        if not level:
            del self._levels[ticket.priority]
        return True

    def completed(self, now: float) -> None:
        """A request finished somewhere in the pool: a slot freed (feeds the wait estimate)."""
        self._rate.tick(now)

    def retry_after(self, now: float) -> float:
        wait = self._rate.seconds_for(self._size + 1, now)
        return max(1.0, math.ceil(wait)) if wait is not None else 1.0


class _Level:
    """One priority: a FIFO per tenant, served round-robin."""

    __slots__ = ("_tenants",)

    def __init__(self) -> None:
        self._tenants: dict[str, deque[Ticket]] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._tenants.values())

    def push(self, ticket: Ticket) -> None:
        self._tenants.setdefault(ticket.tenant, deque()).append(ticket)

    def peek(self) -> Ticket | None:
        for queue in self._tenants.values():
            return queue[0]
        return None

    def pop(self) -> Ticket | None:
        for tenant, queue in self._tenants.items():
            ticket = queue.popleft()
            del self._tenants[tenant]
            if queue:  # back of the round
                self._tenants[tenant] = queue
            return ticket
        return None

    def remove(self, ticket: Ticket) -> bool:
        queue = self._tenants.get(ticket.tenant)
        if queue is None or ticket not in queue:
            return False
        queue.remove(ticket)
        if not queue:
            del self._tenants[ticket.tenant]
        return True


@dataclass
class _RateEstimate:
    """Completions per second over an exponentially decaying window.

    ``count`` is the decayed number of completions; dividing by the decayed length of the
    window observed so far gives an unbiased rate that falls on its own when nothing
    completes.
    """

    halflife_s: float
    min_samples: int
    _count: float = 0.0
    _first: float | None = None
    _last: float = 0.0
    _samples: int = field(default=0)

    @property
    def _decay(self) -> float:
        return math.log(2.0) / self.halflife_s

    def tick(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._count = self._count * math.exp(-self._decay * (now - self._last)) + 1.0
        self._last = now
        self._samples += 1

    def rate(self, now: float) -> float | None:
        if self._first is None or self._samples < self.min_samples:
            return None
        lam = self._decay
        window = (1.0 - math.exp(-lam * max(now - self._first, 1e-9))) / lam
        return self._count * math.exp(-lam * (now - self._last)) / window

    def seconds_for(self, count: int, now: float) -> float | None:
        """Predicted time for ``count`` more completions, or None while unknown."""
        rate = self.rate(now)
        if rate is None:
            return None
        return count / max(rate, 1e-9)
