"""Which pods go when a pool scales down: the controller's part of the drain.

Lowering a Deployment's replicas lets its ReplicaSet pick the pods to delete: first those
not scheduled, pending or not ready, then the lowest ``controller.kubernetes.io/pod-deletion-cost``
(beta since Kubernetes 1.22, on by default), then the youngest. Before lowering a pool,
the controller annotates the pods it wants gone with the lowest costs, so the ReplicaSet
removes those: pods already losing their node first, then the least loaded, then the
youngest (the least warm cache). A pod marked earlier but no longer chosen has its mark
removed. The rest of the drain is the worker's and the gateway's (docs/autoscaler.md).

Pure: pods in, annotation changes out; :mod:`autoscaler.controller.loop` applies them
through the pod adapter before it patches ``/scale``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from autoscaler.controller.disruption import PodFacts

MARK_BASE = -1000
"""The first pod to go gets this cost, the next one more; unmarked pods cost 0."""
MARK_RANGE = 500
"""Costs in [MARK_BASE, MARK_BASE + MARK_RANGE) are this controller's marks."""


def choose_leaving(
    pods: Sequence[PodFacts], remove: int, load: Mapping[str, float] | None = None
) -> tuple[str, ...]:
    """The ``remove`` pods to go, first to go first. ``load`` (pod name -> requests in
    flight) ranks busy pods last; without it, pods rank as equally loaded."""
    if remove <= 0:
        return ()
    load = load or {}

    def rank(p: PodFacts) -> tuple[bool, bool, float, float]:
        return (
            p.disrupted is None,  # already going: first
            p.ready,  # not ready: before ready ones
            load.get(p.name, 0.0),  # least loaded
            -(p.created_at or 0.0),  # youngest
        )

    return tuple(p.name for p in sorted(pods, key=rank)[:remove])


def deletion_costs(
    pods: Sequence[PodFacts], remove: int, load: Mapping[str, float] | None = None
) -> dict[str, str | None]:
    """Annotation values to write (pod name -> cost, None to remove a stale mark); pods
    already as wanted are left out, so a repeated pass writes nothing."""
    leaving = choose_leaving(pods, min(remove, MARK_RANGE), load)
    wanted: dict[str, str | None] = {name: str(MARK_BASE + i) for i, name in enumerate(leaving)}
    for p in pods:
        if p.name not in wanted and _ours(p.deletion_cost):
            wanted[p.name] = None
    current = {p.name: p.deletion_cost for p in pods}
    return {name: cost for name, cost in wanted.items() if current.get(name) != cost}


def _ours(cost: str | None) -> bool:
    """A mark this controller set (it never sets costs outside its own range)."""
    try:
        return cost is not None and MARK_BASE <= int(cost) < MARK_BASE + MARK_RANGE
    except ValueError:
        return False
