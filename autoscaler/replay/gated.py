"""Admission control in the virtual-time replay: the gateway's own admission queue
(:mod:`scheduler.admission`) in front of the routed fleet.

Like ``workers.sim.replay.run_fleet``, but a request first passes the gate: while the pool
has room for its priority (``SaturationPolicy.for_priority``) and nobody of its priority or
above waits, it is routed at once; otherwise a sheddable request is shed, and any other
takes a ticket or is shed for a full queue or a predicted wait beyond the TTFT SLO. Held
requests are released, best priority first with tenants served in turn, whenever the pool
has room again for the first of them (after completions and probe refreshes). Each request
reaches its engine with its priority (:func:`~scheduler.admission.engine_priority`), which
an engine run with the ``priority`` scheduling policy honours.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

from autoscaler.replay.fleet import GatewayRoute
from scheduler.admission import AdmissionQueue, SaturationPolicy, Ticket, engine_priority
from workers.sim.engine import RequestRecord
from workers.sim.replay import ReplayRequest, VirtualEngine


@dataclass(frozen=True, slots=True)
class GatedRequest:
    request: ReplayRequest
    priority: int = 1
    tenant: str = ""


@dataclass
class GatedReport:
    records: list[RequestRecord]
    shed: list[tuple[GatedRequest, str, float]] = field(default_factory=list)
    """(request, reason, seconds from arrival to the 429)."""
    priority_of: dict[str, int] = field(default_factory=dict)


def run_gated(
    engines: Sequence[VirtualEngine],
    requests: Sequence[GatedRequest],
    route: GatewayRoute,
    queue: AdmissionQueue,
    policy: SaturationPolicy,
    *,
    shed_at_or_below: int = 0,
) -> GatedReport:
    arrivals = sorted(requests, key=lambda g: g.request.arrival_s)
    report = GatedReport(records=[])
    held: dict[Ticket, GatedRequest] = {}  # tickets compare by identity
    ends: list[tuple[float, int, int]] = []
    seq = 0
    i, n = 0, len(arrivals)
    inf = float("inf")

    policies: dict[int, SaturationPolicy] = {}

    def saturated(now: float, priority: int) -> bool:
        rule = policies.get(priority)
        if rule is None:
            rule = policies[priority] = policy.for_priority(priority)
        return route.saturation([e.core.snapshot() for e in engines], now, rule) >= 1.0

    def dispatch(gated: GatedRequest, now: float, touched: set[int]) -> None:
        request = gated.request
        index = route(request, [e.core.snapshot() for e in engines])
        if engines[index].accepts(request):
            engines[index].submit(request, now, priority=engine_priority(gated.priority))
            report.priority_of[request.request_id] = gated.priority
            touched.add(index)

    while i < n or ends or held:
        next_arrival = arrivals[i].request.arrival_s if i < n else inf
        now = min(next_arrival, ends[0][0] if ends else inf)
        if now == inf:  # only held requests left and nothing running: release them
            now = route.next_probe_at()
        touched: set[int] = set()
        while ends and ends[0][0] <= now:
            index = heapq.heappop(ends)[2]
            engine = engines[index]
            done = len(engine.records)
            engine.finish_step()
            finished = engine.records[done:]
            route.finished(index, finished)
            for _ in finished:
                queue.completed(now)
            report.records.extend(finished)
            touched.add(index)
        while i < n and arrivals[i].request.arrival_s <= now:
            gated = arrivals[i]
            i += 1
            if not queue.waiting_at_or_above(gated.priority) and not saturated(now, gated.priority):
                dispatch(gated, now, touched)
                continue
            if gated.priority <= shed_at_or_below:
                report.shed.append((gated, "sheddable", 0.0))
                continue
            ticket = Ticket(priority=gated.priority, tenant=gated.tenant, arrived=now)
            verdict = queue.offer(ticket, now)
            if verdict is not None:
                report.shed.append((gated, verdict.reason, 0.0))
            else:
                held[ticket] = gated
        while (first := queue.peek()) is not None and not saturated(now, first.priority):
            queue.pop()
            dispatch(held.pop(first), now, touched)
        for index in sorted(touched):
            engine = engines[index]
            horizon = arrivals[i].request.arrival_s if i < n else inf
            if engine.step is None and (step := engine.start_step(now, horizon)) is not None:
                seq += 1
                heapq.heappush(ends, (step.ends_at, seq, index))
    return report
