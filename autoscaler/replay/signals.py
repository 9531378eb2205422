"""What an autoscaler can observe during the replay, over a sliding window, cheaply enough to
be read every couple of seconds of a day-long run.

The replay feeds arrivals, first tokens (TTFT) and finished requests (mean ITL) as they
happen on the engines' clock; a read gives the arrival rate and the p95s over the last
``window_s`` of that clock. Percentiles come from a sorted list kept up to date (insert and
remove by bisection), so a read costs O(1) after expiring old entries.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Signals:
    """One moment's signals for one model (``None`` where nothing was observed)."""

    arrival_rps: float | None
    ttft_p95_s: float | None
    itl_p95_s: float | None
    waiting: float
    """Requests in the engines' waiting queues (vLLM's ``num_requests_waiting``)."""
    queued: float
    """Waiting plus requests the gateway holds for want of a worker."""
    in_flight: float
    """Running, waiting and held: the concurrency."""
    miss_share: float | None = None
    """Share of the window's requests over the TTFT or the ITL target (their sum: a
    request missing both counts twice, so this errs high), when targets are known."""
    requests: int = 0
    """Requests with a first token in the window (what the miss share is over)."""


class SortedWindow:
    """Values with timestamps; the ones older than ``window_s`` are dropped on read."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._entries: deque[tuple[float, float]] = deque()
        self._sorted: list[float] = []

    def add(self, at: float, value: float) -> None:
        self._entries.append((at, value))
        bisect.insort(self._sorted, value)

    def expire(self, now: float) -> None:
        entries, values, oldest = self._entries, self._sorted, now - self.window_s
        while entries and entries[0][0] < oldest:
            _, value = entries.popleft()
            del values[bisect.bisect_left(values, value)]

    def __len__(self) -> int:
        return len(self._entries)

    def share_above(self, limit: float) -> float | None:
        values = self._sorted
        if not values:
            return None
        return (len(values) - bisect.bisect_right(values, limit)) / len(values)

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile of the values in the window."""
        values = self._sorted
        if not values:
            return None
        return values[max(0, math.ceil(q * len(values)) - 1)]


class SignalWindow:
    """Arrivals, TTFTs and ITLs over the last ``window_s`` seconds of the engines' clock."""

    def __init__(self, window_s: float, targets: tuple[float, float] | None = None) -> None:
        """``targets``: (TTFT, ITL) limits in seconds, for the miss share."""
        self.window_s = window_s
        self.targets = targets
        self._arrivals: deque[float] = deque()
        self.ttft = SortedWindow(window_s)
        self.itl = SortedWindow(window_s)
        self._started: float | None = None

    def arrival(self, at: float) -> None:
        if self._started is None:
            self._started = at
        self._arrivals.append(at)

    def read(self, now: float, waiting: float, held: float, in_flight: float) -> Signals:
        oldest = now - self.window_s
        while self._arrivals and self._arrivals[0] < oldest:
            self._arrivals.popleft()
        self.ttft.expire(now)
        self.itl.expire(now)
        span = self.window_s if self._started is None else min(self.window_s, now - self._started)
        rate = len(self._arrivals) / span if span > 0 else None
        miss: float | None = None
        if self.targets is not None:
            ttft_limit, itl_limit = self.targets
            ttft, itl = self.ttft.share_above(ttft_limit), self.itl.share_above(itl_limit)
            if ttft is not None or itl is not None:
                miss = min(1.0, (ttft or 0.0) + (itl or 0.0))
        return Signals(
            arrival_rps=rate,
            ttft_p95_s=self.ttft.quantile(0.95),
            itl_p95_s=self.itl.quantile(0.95),
            waiting=waiting,
            queued=waiting + held,
            in_flight=in_flight + held,
            miss_share=miss,
            requests=len(self.ttft),
        )
