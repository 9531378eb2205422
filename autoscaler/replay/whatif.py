"""The what-if loop: arrivals through the gateway's router to simulated engines whose number
changes over time, with a scaling policy deciding and a cluster model provisioning, billing
and preempting.

A variant of ``workers.sim.replay.run_fleet`` for an elastic fleet, on two clocks: engines
and requests on the virtual clock, the cluster and the policy on the scenario clock,
``time_scale`` times faster (see ``scenario``). At each instant, in order: steps that end
are completed (first tokens and finished requests feed the signals; an emptied draining
replica is released), cluster events apply (a ready replica gets an engine, joins the
router and takes held requests; a draining or noticed one leaves the router; at a notice
the requests it has not started are re-routed, as the gateway retries a request before its
first byte; when the node goes, what still runs is lost), clients give up on requests with
no first token ``abandon_after_s`` after they arrived, arrivals are routed (or held while
no worker can take them), the policy decides when its interval is due, a sample is taken
for the plot, and idle engines with work start a step.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from autoscaler.replay.cluster import ClusterEvent, ClusterModel
from autoscaler.replay.elastic import ElasticRoute
from autoscaler.replay.policies import ClusterView, ScalingPolicy
from autoscaler.replay.signals import SignalWindow
from workers.sim.replay import ReplayRequest, VirtualEngine
from workers.sim.sequence import Step

Fate = Literal["served", "lost", "abandoned"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request: TTFT from its first arrival, mean ITL, tokens. ``lost``: its node went
    while it ran; ``abandoned``: no first token within the client's patience (or never a
    worker). Only served ones have finite latencies."""

    arrival_s: float
    ttft_s: float
    itl_s: float
    generated: int
    fate: Fate = "served"


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    """Scenario seconds."""
    ready: dict[str, int]
    desired: dict[str, int]
    starting: dict[str, int]


@dataclass
class WhatIfRun:
    outcomes: list[Outcome] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    retried: int = 0
    rejected: int = 0


def run_whatif(
    requests: Sequence[ReplayRequest],
    policy: ScalingPolicy,
    cluster: ClusterModel,
    route: ElasticRoute,
    make_engine: Callable[[], VirtualEngine],
    *,
    initial_replicas: int,
    time_scale: float,
    horizon_s: float,
    signal_window_s: float = 60.0,
    sample_s: float = 300.0,
    abandon_after_s: float = 60.0,
    slo_targets: tuple[float, float] | None = None,
    measure_from_s: float = 0.0,
) -> WhatIfRun:
    """Replay ``requests`` (virtual seconds, sorted) for ``horizon_s`` scenario seconds.
    ``slo_targets`` (TTFT, ITL) lets the signals report the share of requests missing them.
    Retries and rejections count for requests arriving from ``measure_from_s`` (scenario
    seconds; what comes before is a warm-up); outcomes and samples are all kept."""
    k = time_scale
    measured_from = measure_from_s / k
    run = WhatIfRun()
    signals = SignalWindow(signal_window_s / k, slo_targets)
    engines: dict[str, VirtualEngine] = {}
    in_flight: dict[str, dict[str, ReplayRequest]] = {}
    where: dict[str, str | None] = {}  # request -> its replica, None while held
    patience: deque[tuple[float, str]] = deque()  # (arrival, request), arrival order
    leaving: set[str] = set()
    started: set[str] = set()
    first_token: dict[str, float] = {}
    held: deque[ReplayRequest] = deque()
    ends: list[tuple[float, int, str, Step]] = []
    seq = 0
    inf = math.inf
    touched: set[str] = set()

    def dispatch(request: ReplayRequest, now: float) -> None:
        rid = request.request_id
        replica = route.route(request, now)
        if replica is None:
            held.append(request)
            where[rid] = None
            return
        engine = engines[replica]
        if not engine.accepts(request):
            run.rejected += request.arrival_s >= measured_from
            where.pop(rid, None)
            return
        engine.submit(request, now)
        in_flight[replica][rid] = request
        where[rid] = replica
        touched.add(replica)

    def end(rid: str, arrival_s: float, fate: Fate) -> None:
        del where[rid]
        run.outcomes.append(Outcome(arrival_s, inf, inf, 0, fate))

    def release(replica: str, now: float) -> None:
        """The engine of a leaving replica has nothing left: drop it."""
        del engines[replica], in_flight[replica]
        leaving.discard(replica)
        cluster.drained(replica, now * k)

    def apply(events: Sequence[ClusterEvent], now: float) -> None:
        for event in events:
            replica = event.replica
            if event.kind == "ready":
                engines[replica] = make_engine()
                in_flight[replica] = {}
                route.add(replica, engines[replica], now)
                for _ in range(len(held)):
                    request = held.popleft()
                    if request.request_id in where:  # not abandoned meanwhile
                        dispatch(request, now)
            elif replica not in engines:
                continue
            elif event.kind in ("drain", "notice"):
                route.remove(replica)
                leaving.add(replica)
                if event.kind == "notice":
                    retry(replica, now)
                if not in_flight[replica]:
                    release(replica, now)
            elif event.kind == "gone":
                engine = engines[replica]
                for rid, request in in_flight[replica].items():
                    engine.core.abort_request(rid, now)
                    started.discard(rid)
                    first_token.pop(rid, None)
                    end(rid, request.arrival_s, "lost")
                in_flight[replica].clear()
                release(replica, now)

    def retry(replica: str, now: float) -> None:
        engine, mine = engines[replica], in_flight[replica]
        for rid in [rid for rid in mine if rid not in started]:
            engine.core.abort_request(rid, now)
            request = mine.pop(rid)
            run.retried += request.arrival_s >= measured_from
            dispatch(request, now)

    def abandon(now: float) -> None:
        oldest = now - abandon_after_s
        while patience and patience[0][0] < oldest:
            arrival, rid = patience.popleft()
            if rid not in where or rid in started:
                continue
            replica = where[rid]
            if replica is not None:  # else held: skipped when the held queue is served
                engines[replica].core.abort_request(rid, now)
                del in_flight[replica][rid]
                if replica in leaving and not in_flight[replica]:
                    release(replica, now)
            end(rid, arrival, "abandoned")

    def view(now: float) -> ClusterView:
        waiting = running = 0
        for engine in engines.values():
            waiting += engine.core.num_waiting
            running += engine.core.num_running
        reading = signals.read(now, waiting, sum(r.request_id in where for r in held), running)
        return ClusterView(now * k, cluster.status(now * k), reading)

    def finish_step(replica: str, step: Step, now: float) -> None:
        engine = engines[replica]
        engine.finish_step()
        touched.add(replica)
        mine = in_flight[replica]
        if step.batch.num_prefill_tokens:
            for req, _ in step.scheduled:
                if req.first_token_at == now and req.rid not in started:
                    started.add(req.rid)
                    first_token[req.rid] = ttft = now - mine[req.rid].arrival_s
                    signals.ttft.add(now, ttft)
        for record in engine.records:
            request = mine.pop(record.request_id)
            started.discard(record.request_id)
            del where[record.request_id]
            assert record.first_token_at is not None and record.last_token_at is not None
            itl = (record.last_token_at - record.first_token_at) / max(1, record.num_generated - 1)
            signals.itl.add(now, itl)
            ttft = first_token.pop(record.request_id)
            run.outcomes.append(Outcome(request.arrival_s, ttft, itl, record.num_generated))
        engine.records.clear()
        if replica in leaving and not mine:
            release(replica, now)

    def sample(now: float) -> None:
        pools = cluster.status(now * k)
        run.samples.append(
            Sample(
                now * k,
                {p.name: p.ready for p in pools},
                {p.name: p.desired for p in pools},
                {p.name: p.starting for p in pools},
            )
        )

    arrivals, i, n = requests, 0, len(requests)
    apply(cluster.warm_start(policy.initial(cluster.status(0.0), initial_replicas), 0.0), 0.0)
    next_tick, next_sample, last = 0.0, 0.0, horizon_s / k
    while True:
        timers = min(next_tick, next_sample, cluster.next_event_at() / k)
        if timers >= last:
            timers = inf  # past the scenario: only finish what runs
        next_arrival = arrivals[i].arrival_s if i < n else inf
        now = min(next_arrival, ends[0][0] if ends else inf, timers)
        if now == inf:
            break
        touched.clear()
        while ends and ends[0][0] <= now:
            _, _, replica, step = heapq.heappop(ends)
            engine = engines.get(replica)
            if engine is not None and engine.step is step:
                finish_step(replica, step, now)
        due = cluster.next_event_at()
        if due / k <= now:
            # max(): now * k can round below the event that set ``now``; never spin on it
            apply(cluster.advance(max(now * k, due)), now)
        abandon(now)
        while i < n and arrivals[i].arrival_s <= now:
            request = arrivals[i]
            i += 1
            signals.arrival(request.arrival_s)
            patience.append((request.arrival_s, request.request_id))
            dispatch(request, now)
        if next_tick <= now:
            for pool, count in policy.decide(view(now)).items():
                apply(cluster.set_desired(pool, count, now * k), now)
            next_tick += policy.interval_s / k
        if next_sample <= now:
            sample(now)
            next_sample += sample_s / k
        horizon = min(arrivals[i].arrival_s if i < n else inf, cluster.next_event_at() / k)
        for replica in touched:
            engine = engines.get(replica)
            if engine is not None and engine.step is None:
                step_ = engine.start_step(now, horizon)
                if step_ is not None:
                    seq += 1
                    heapq.heappush(ends, (step_.ends_at, seq, replica, step_))
    for request in held:
        if request.request_id in where:
            end(request.request_id, request.arrival_s, "abandoned")
    return run
