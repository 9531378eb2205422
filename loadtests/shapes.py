"""Load shapes: how many users run at each moment, as pure functions of elapsed time.

``tick`` answers Locust's question ("how many users now, spawned how fast?", or None to
stop) from the run time and a snapshot of the load (requests in flight, whether anything
is left to send), so every shape is tested without Locust or a clock.

Step and spike are closed-loop (each user sends, waits for the answer, sends again). Trace
replay is open-loop: requests leave at the trace's arrival times (divided by a speed-up
factor) whoever is free to send them, and the pool of users only grows, to stay ahead of
the requests in flight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from loadtests.tracefile import TraceRow

Tick = tuple[int, float] | None
"""(users, spawn rate per second), or None: the test is over."""


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    in_flight: int = 0
    """Requests sent and not yet answered."""
    waiting: int = 0
    """Replay arrivals a user holds until their time comes (not sent yet)."""
    exhausted: bool = False
    """Nothing more will be sent (request budget used up, or every arrival dispatched)."""
    users: int = 0


class Shape(Protocol):
    def tick(self, run_time_s: float, load: LoadSnapshot) -> Tick: ...


def _drained(load: LoadSnapshot) -> bool:
    return load.exhausted and load.in_flight == 0 and load.waiting == 0


@dataclass(frozen=True, slots=True)
class ConstantShape:
    users: int
    spawn_rate: float
    duration_s: float | None = None

    def tick(self, run_time_s: float, load: LoadSnapshot) -> Tick:
        if _drained(load) or (self.duration_s is not None and run_time_s >= self.duration_s):
            return None
        return self.users, self.spawn_rate


@dataclass(frozen=True, slots=True)
class StepShape:
    """``start_users``, then ``step_users`` more every ``step_s``, for ``steps`` steps."""

    start_users: int
    step_users: int
    step_s: float
    steps: int
    spawn_rate: float

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.steps < 1 or self.start_users < 0 or self.step_users < 0:
            raise ValueError("step shape: need step time > 0, steps >= 1, users >= 0")
        if self.start_users + self.step_users * (self.steps - 1) < 1:
            raise ValueError("step shape: never runs a user")

    def tick(self, run_time_s: float, load: LoadSnapshot) -> Tick:
        if _drained(load) or run_time_s >= self.step_s * self.steps:
            return None
        step = int(run_time_s // self.step_s)
        return self.start_users + step * self.step_users, self.spawn_rate


@dataclass(frozen=True, slots=True)
class SpikeShape:
    """``base_users``, jumping to ``spike_users`` at ``spike_at_s`` for ``spike_s``."""

    base_users: int
    spike_users: int
    spike_at_s: float
    spike_s: float
    duration_s: float
    spawn_rate: float

    def __post_init__(self) -> None:
        if self.base_users < 0 or self.spike_users < 1 or self.spike_s <= 0:
            raise ValueError("spike shape: need spike users >= 1, base users >= 0, length > 0")
        if not 0 <= self.spike_at_s < self.duration_s:
            raise ValueError("spike shape: the spike must start within the run")

    def tick(self, run_time_s: float, load: LoadSnapshot) -> Tick:
        if _drained(load) or run_time_s >= self.duration_s:
            return None
        in_spike = self.spike_at_s <= run_time_s < self.spike_at_s + self.spike_s
        return (self.spike_users if in_spike else self.base_users), self.spawn_rate


@dataclass(frozen=True, slots=True)
class ReplayShape:
    """Enough users to send every arrival on time; over once all are sent and answered,
    or ``drain_s`` after the last arrival (whichever is first).

    Users beyond those busy with a request each hold the next arrival and sleep until it
    is due, so ``headroom`` free users cover that many arrivals due before the next tick.
    The pool follows requests in flight, not arrivals held, or it would grow to hold the
    whole trace."""

    last_arrival_s: float
    min_users: int = 8
    max_users: int = 1000
    headroom: int = 4
    drain_s: float = 60.0
    spawn_rate: float = 100.0
    """Fast, so new users are ready within a tick of being wanted."""

    def tick(self, run_time_s: float, load: LoadSnapshot) -> Tick:
        if _drained(load) or run_time_s >= self.last_arrival_s + self.drain_s:
            return None
        wanted = max(self.min_users, math.ceil(load.in_flight * 1.25) + self.headroom)
        users = min(self.max_users, max(load.users, wanted))
        return users, self.spawn_rate


@dataclass(frozen=True, slots=True)
class Arrival:
    index: int
    due_s: float
    """Seconds after the start of the replay (already divided by the speed-up)."""
    row: TraceRow


class ReplaySchedule:
    """The trace's arrivals in order, handed to whichever user asks next."""

    def __init__(
        self, rows: Sequence[TraceRow], speedup: float, max_requests: int | None = None
    ) -> None:
        if not speedup > 0 or math.isinf(speedup):
            raise ValueError(f"speed-up must be a positive number, got {speedup}")
        self._rows = rows[:max_requests] if max_requests is not None else rows
        self._speedup = speedup
        self._next = 0
        self.late = 0
        """Arrivals sent more than ``late_after_s`` after they were due (too few users)."""
        self.max_lag_s = 0.0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def last_arrival_s(self) -> float:
        return self._rows[-1].arrival_s / self._speedup if self._rows else 0.0

    @property
    def exhausted(self) -> bool:
        return self._next >= len(self._rows)

    def take(self) -> Arrival | None:
        if self.exhausted:
            return None
        index = self._next
        self._next += 1
        row = self._rows[index]
        return Arrival(index, row.arrival_s / self._speedup, row)

    def peak_arrivals(self, window_s: float = 1.0) -> int:
        """Most arrivals due within any ``window_s`` (after the speed-up): the free users a
        replay needs to send a tick's worth of arrivals on time."""
        dues = [row.arrival_s / self._speedup for row in self._rows]
        peak, start = 0, 0
        for end, due in enumerate(dues):
            while due - dues[start] >= window_s:
                start += 1
            peak = max(peak, end - start + 1)
        return peak

    def record_lag(self, lag_s: float, late_after_s: float = 0.1) -> None:
        """How late an arrival went out (negative or zero: on time)."""
        self.max_lag_s = max(self.max_lag_s, lag_s)
        if lag_s > late_after_s:
            self.late += 1
