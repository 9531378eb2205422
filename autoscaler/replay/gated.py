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

With ``SaturationPolicy.max_prefill_tokens`` set, the gate also counts each worker's
prefill backlog (the prompt tokens sent to it whose first token has not come back, as a
streaming gateway sees them) and routing sees only the workers under that bound: the
route's router must be a :class:`RoomRouter`, which passes the others to it as
``RoutingContext.exclude``, as the gateway's proxy would. The replay's route reports the
pool's saturation without the backlog, so a request is let in while some worker has room
by the other measures and some worker, not necessarily the same, has room in its backlog.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from autoscaler.replay.fleet import GatewayRoute, RoutesRequests
from scheduler.admission import (
    AdmissionQueue,
    SaturationPolicy,
    Ticket,
    engine_priority,
    prefill_saturation,
)
from scheduler.framework import Decision, RoutingContext
from workers.sim.engine import RequestRecord
from workers.sim.replay import ReplayRequest, VirtualEngine
from workers.sim.sequence import Step


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


class RoomRouter:
    """Routes only to workers the gate found room on: the others (by engine index, which
    is their order in the route's snapshot) go to the wrapped router as excluded."""

    def __init__(self, router: RoutesRequests) -> None:
        self.router = router
        self.full: frozenset[int] = frozenset()

    def route(self, ctx: RoutingContext, rng: random.Random) -> Decision:
        if self.full:
            endpoints = ctx.snapshot.endpoints
            urls = {endpoints[i].url for i in self.full if i < len(endpoints)}
            ctx = replace(ctx, exclude=frozenset(ctx.exclude) | urls)
        return self.router.route(ctx, rng)


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
    rooms = route.router if isinstance(route.router, RoomRouter) else None
    if policy.max_prefill_tokens is not None and rooms is None:
        raise ValueError("max_prefill_tokens needs the route's router to be a RoomRouter")
    # Per engine: prompt tokens of the requests sent there that have no first token yet.
    prefilling: list[dict[str, int]] = [{} for _ in engines]
    backlog = [0] * len(engines)

    def rule_for(priority: int) -> SaturationPolicy:
        rule = policies.get(priority)
        if rule is None:
            rule = policies[priority] = policy.for_priority(priority)
        return rule

    def backlog_full(rule: SaturationPolicy) -> frozenset[int]:
        return frozenset(i for i, t in enumerate(backlog) if prefill_saturation(t, rule) >= 1.0)

    def saturated(now: float, priority: int) -> bool:
        rule = rule_for(priority)
        if len(backlog_full(rule)) == len(engines):
            return True
        return route.saturation([e.core.snapshot() for e in engines], now, rule) >= 1.0

    def dispatch(gated: GatedRequest, now: float, touched: set[int]) -> None:
        request = gated.request
        if rooms is not None:
            rooms.full = backlog_full(rule_for(gated.priority))
        index = route(request, [e.core.snapshot() for e in engines])
        if engines[index].accepts(request):
            engines[index].submit(request, now, priority=engine_priority(gated.priority))
            report.priority_of[request.request_id] = gated.priority
            prefilling[index][request.request_id] = request.prompt_tokens
            backlog[index] += request.prompt_tokens
            touched.add(index)

    def first_tokens(index: int, step: Step) -> None:
        """The step's requests that sampled their first token leave the backlog."""
        waiting = prefilling[index]
        for seq, _ in step.scheduled:
            if seq.first_token_at is not None and seq.rid in waiting:
                backlog[index] -= waiting.pop(seq.rid)

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
            step = engine.step
            engine.finish_step()
            if step is not None:
                first_tokens(index, step)
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
