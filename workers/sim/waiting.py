"""The engine core's waiting queue, under vLLM V1's two scheduling policies.

``fcfs`` (the default) is a deque: arrivals at the back, preempted requests back at the
front. ``priority`` (``--scheduling-policy priority``) orders by (priority, arrival at the
engine), lower values first, as vLLM does; a preempted request goes back in that order too.
Aborted entries stay in the queue and are skipped by the core when reached.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Literal, Protocol

from workers.sim.sequence import SeqState

SchedulingPolicy = Literal["fcfs", "priority"]


class WaitingQueue(Protocol):
    def __bool__(self) -> bool: ...

    def add(self, req: SeqState) -> None:
        """A new arrival."""
        ...

    def requeue(self, req: SeqState) -> None:
        """A preempted request, to be resumed before later arrivals of its rank."""
        ...

    def peek(self) -> SeqState: ...

    def pop(self) -> SeqState: ...


class FcfsQueue:
    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: deque[SeqState] = deque()

    def __bool__(self) -> bool:
        return bool(self._queue)

    def add(self, req: SeqState) -> None:
        self._queue.append(req)

    def requeue(self, req: SeqState) -> None:
        self._queue.appendleft(req)

    def peek(self) -> SeqState:
        return self._queue[0]

    def pop(self) -> SeqState:
        return self._queue.popleft()


class PriorityQueue:
    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple[int, float, int, SeqState]] = []

    def __bool__(self) -> bool:
        return bool(self._heap)

    def add(self, req: SeqState) -> None:
        heapq.heappush(self._heap, (req.priority, req.arrived_at, req.salt, req))

    requeue = add  # a preempted request keeps its (priority, arrival) rank

    def peek(self) -> SeqState:
        return self._heap[0][3]

    def pop(self) -> SeqState:
        return heapq.heappop(self._heap)[3]


def waiting_queue(policy: SchedulingPolicy) -> WaitingQueue:
    return PriorityQueue() if policy == "priority" else FcfsQueue()


def preemption_victim(running: list[SeqState], policy: SchedulingPolicy) -> int:
    """Index of the running request to preempt when KV blocks run out: the most recently
    admitted one (fcfs), or the lowest priority, latest arrival among them (priority)."""
    if policy == "fcfs":
        return len(running) - 1
    return max(range(len(running)), key=lambda i: (running[i].priority, running[i].arrived_at))
