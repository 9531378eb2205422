"""The cluster under the replay: pools of GPU nodes that take minutes to start, cost money
while they exist and, on spot, can be taken back.

A pool behaves like a Deployment whose every pod needs a fresh node. A policy sets its
desired count; the model keeps that many live replicas (a ReplicaSet replaces a preempted
pod at once). A replica goes pending (no spot capacity: unschedulable) -> provisioning
(node launch, then image pull and model load) -> ready, and leaves by draining (scaled
down: no new requests, in-flight ones finish, then the node goes) or by a preemption
notice (no new requests; the node goes ``notice_s`` later, whatever still runs is lost).
Scale-down takes pending replicas first, then provisioning ones, then the newest ready
ones, as a ReplicaSet does. Nodes are billed per second from launch until they go.

Pure: the caller passes the time (seconds of the scenario's clock) and gets events back
(``ready``, ``drain``, ``notice``, ``gone``), which the replay turns into engines joining and
leaving the router. Randomness (individual preemptions) comes from a seeded generator per
pool; mass preemptions and capacity windows come from a :class:`SpotMarket`.

A replay may start with a warm-up (each policy settles into its own fleet before the
measured window): scaling actions and preemptions count from ``count_from``, and the
bill is asked for the measured window only.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from autoscaler.replay.market import SpotMarket
from autoscaler.replay.pools import CapacityType, PoolSpec


class Phase(Enum):
    PENDING = "pending"
    PROVISIONING = "provisioning"
    READY = "ready"
    DRAINING = "draining"
    NOTICED = "noticed"
    GONE = "gone"


LIVE = (Phase.PENDING, Phase.PROVISIONING, Phase.READY)
NODE = (Phase.PROVISIONING, Phase.READY, Phase.DRAINING)
EventKind = Literal["ready", "drain", "notice", "gone"]


@dataclass
class Replica:
    id: str
    pool: str
    phase: Phase
    asked_at: float
    serial: int
    launched_at: float | None = None
    """When its node was launched (billing starts); None while pending."""
    ready_at: float | None = None
    gone_at: float | None = None


@dataclass(frozen=True, slots=True)
class ClusterEvent:
    at: float
    kind: EventKind
    replica: str
    pool: str


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A pool as a controller sees it."""

    name: str
    capacity_type: CapacityType
    price_per_hour: float
    min_replicas: int
    max_replicas: int
    desired: int
    ready: int
    starting: int
    """Nodes launched, not ready yet."""
    pending: int
    """Unschedulable: waiting for a node (no capacity, or the node still launching)."""
    pending_since: float | None
    leaving: int
    """Draining or noticed."""
    preempted_at: tuple[float, ...] = ()
    """When each of this pool's replicas got its preemption notice (last hour): what the
    controller's disruption watch reports. The noticed replicas are already replaced (a
    ReplicaSet replaces a pod evicted at the notice) and not counted as ready."""


class ClusterModel:
    def __init__(
        self,
        pools: Sequence[PoolSpec],
        market: SpotMarket,
        *,
        seed: int = 0,
        count_from: float = 0.0,
    ) -> None:
        self.specs = {p.name: p for p in pools}
        self.count_from = count_from
        self.market = market
        self.desired = {p.name: 0 for p in pools}
        self.replicas: dict[str, Replica] = {}
        """Replicas not gone yet, by id."""
        self.departed: list[Replica] = []
        self.actions = {p.name: 0 for p in pools}
        self.preemptions = 0
        self._notices: dict[str, list[float]] = {p.name: [] for p in pools}
        self.mass_preemptions = 0
        self._rng = {p.name: random.Random(f"cluster:{seed}:{p.name}") for p in pools}
        self._count = {p.name: 0 for p in pools}
        self._timers: list[tuple[float, int, str, str]] = []  # (at, seq, what, replica|pool)
        self._seq = 0
        for at, pool in market.mass_preemptions:
            self._timer(at, "mass", pool)
        for at, pool in market.window_ends():
            self._timer(at, "available", pool)

    # -- what the replay asks ------------------------------------------------------------

    def warm_start(self, replicas: Mapping[str, int], now: float) -> list[ClusterEvent]:
        """Replicas that are ready at ``now`` (the fleet a policy runs before the replay)."""
        events: list[ClusterEvent] = []
        for pool, count in replicas.items():
            self.desired[pool] = count
            for _ in range(count):
                replica = self._new(pool, now)
                self._launch(replica, now, ready_at=now)
                replica.phase, replica.ready_at = Phase.READY, now
                events.append(ClusterEvent(now, "ready", replica.id, pool))
        return events

    def set_desired(self, pool: str, count: int, now: float) -> list[ClusterEvent]:
        count = max(0, count)
        if count == self.desired[pool]:
            return []
        if now >= self.count_from:
            self.actions[pool] += 1
        self.desired[pool] = count
        return self._reconcile(pool, now)

    def drained(self, replica_id: str, now: float) -> None:
        """A draining replica has nothing in flight: its node goes now."""
        replica = self.replicas.get(replica_id)
        if replica is not None and replica.phase is Phase.DRAINING:
            self._gone(replica, now)

    def next_event_at(self) -> float:
        return self._timers[0][0] if self._timers else math.inf

    def advance(self, now: float) -> list[ClusterEvent]:
        events: list[ClusterEvent] = []
        while self._timers and self._timers[0][0] <= now:
            at, _, what, key = heapq.heappop(self._timers)
            if what == "mass":
                events += self._mass_preemption(key, at)
            elif what == "available":
                events += self._capacity_back(key, at)
            elif (replica := self.replicas.get(key)) is not None:
                events += self._replica_timer(replica, what, at)
        return events

    def status(self, now: float) -> tuple[PoolStatus, ...]:
        by_pool: dict[str, list[Replica]] = {name: [] for name in self.specs}
        for replica in self.replicas.values():
            by_pool[replica.pool].append(replica)
        out = []
        for name, spec in self.specs.items():
            replicas = by_pool[name]
            waiting = [r for r in replicas if self._unscheduled(r, now)]
            out.append(
                PoolStatus(
                    name=name,
                    capacity_type=spec.capacity_type,
                    price_per_hour=spec.price_per_hour,
                    min_replicas=spec.min_replicas,
                    max_replicas=spec.max_replicas,
                    desired=self.desired[name],
                    ready=sum(r.phase is Phase.READY for r in replicas),
                    starting=sum(r.phase is Phase.PROVISIONING for r in replicas),
                    pending=len(waiting),
                    pending_since=min((r.asked_at for r in waiting), default=None),
                    leaving=sum(r.phase in (Phase.DRAINING, Phase.NOTICED) for r in replicas),
                    preempted_at=tuple(t for t in self._notices[name] if now - t <= 3600.0),
                )
            )
        return tuple(out)

    def replica_seconds(self, until: float, since: float = 0.0) -> dict[str, float]:
        """Node-seconds per pool between ``since`` and ``until``, launch (provisioning
        included) to gone."""
        seconds = dict.fromkeys(self.specs, 0.0)
        for r in [*self.replicas.values(), *self.departed]:
            if r.launched_at is not None and r.launched_at < until:
                end = until if r.gone_at is None else min(r.gone_at, until)
                seconds[r.pool] += max(0.0, end - max(since, r.launched_at))
        return seconds

    def cost(self, until: float, since: float = 0.0) -> dict[str, float]:
        return {
            pool: s / 3600.0 * self.specs[pool].price_per_hour
            for pool, s in self.replica_seconds(until, since).items()
        }

    # -- mechanics -----------------------------------------------------------------------

    def _unscheduled(self, replica: Replica, now: float) -> bool:
        if replica.phase is Phase.PENDING:
            return True
        launched = replica.launched_at
        return (
            replica.phase is Phase.PROVISIONING
            and launched is not None
            and now < launched + self.specs[replica.pool].node_launch_s
        )

    def _reconcile(self, pool: str, now: float) -> list[ClusterEvent]:
        live = [r for r in self.replicas.values() if r.pool == pool and r.phase in LIVE]
        missing = self.desired[pool] - len(live)
        events: list[ClusterEvent] = []
        for _ in range(missing):
            replica = self._new(pool, now)
            if self.market.available(pool, now):
                self._launch(replica, now)
        if missing >= 0:
            return events
        order = {Phase.PENDING: 0, Phase.PROVISIONING: 1, Phase.READY: 2}
        live.sort(key=lambda r: (order[r.phase], -(r.ready_at or r.asked_at), -r.serial))
        for replica in live[:-missing]:
            if replica.phase is Phase.READY:
                replica.phase = Phase.DRAINING
                events.append(ClusterEvent(now, "drain", replica.id, pool))
            else:
                self._gone(replica, now)
        return events

    def _new(self, pool: str, now: float) -> Replica:
        self._count[pool] += 1
        serial = self._count[pool]
        replica = Replica(f"{pool}-{serial}", pool, Phase.PENDING, now, serial)
        self.replicas[replica.id] = replica
        return replica

    def _launch(self, replica: Replica, now: float, ready_at: float | None = None) -> None:
        spec = self.specs[replica.pool]
        replica.phase, replica.launched_at = Phase.PROVISIONING, now
        self._timer(now + spec.provisioning_s if ready_at is None else ready_at, "up", replica.id)
        hazard = spec.preemptions_per_replica_hour if spec.capacity_type == "spot" else 0.0
        if hazard > 0:
            lifetime = self._rng[replica.pool].expovariate(hazard / 3600.0)
            self._timer(now + lifetime, "notice", replica.id)

    def _replica_timer(self, replica: Replica, what: str, at: float) -> list[ClusterEvent]:
        if what == "up" and replica.phase is Phase.PROVISIONING:
            replica.phase, replica.ready_at = Phase.READY, at
            return [ClusterEvent(at, "ready", replica.id, replica.pool)]
        if what == "notice" and replica.phase in NODE:
            return self._notice(replica, at)
        if what == "gone" and replica.phase is Phase.NOTICED:
            self._gone(replica, at)
            return [ClusterEvent(at, "gone", replica.id, replica.pool)]
        return []

    def _notice(self, replica: Replica, at: float) -> list[ClusterEvent]:
        replica.phase = Phase.NOTICED
        if at >= self.count_from:
            self.preemptions += 1
        self._notices[replica.pool].append(at)
        self._timer(at + self.specs[replica.pool].notice_s, "gone", replica.id)
        event = ClusterEvent(at, "notice", replica.id, replica.pool)
        return [event, *self._reconcile(replica.pool, at)]

    def _mass_preemption(self, pool: str, at: float) -> list[ClusterEvent]:
        nodes = sorted(
            (r for r in self.replicas.values() if r.pool == pool and r.phase in NODE),
            key=lambda r: r.serial,
        )
        if not nodes:
            return []
        if at >= self.count_from:
            self.mass_preemptions += 1
        share = self.specs[pool].mass_preemption_share
        hit = self._rng[pool].sample(nodes, math.ceil(share * len(nodes)))
        events: list[ClusterEvent] = []
        for replica in hit:
            events += self._notice(replica, at)
        return events

    def _capacity_back(self, pool: str, at: float) -> list[ClusterEvent]:
        if not self.market.available(pool, at):
            return []
        for replica in self.replicas.values():
            if replica.pool == pool and replica.phase is Phase.PENDING:
                self._launch(replica, at)
        return []

    def _gone(self, replica: Replica, at: float) -> None:
        replica.phase, replica.gone_at = Phase.GONE, at
        del self.replicas[replica.id]
        self.departed.append(replica)

    def _timer(self, at: float, what: str, key: str) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (at, self._seq, what, key))
