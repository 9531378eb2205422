"""Capacity lost to spot preemption and node termination, from pod and node events.

Pure: each watch event (``ADDED``/``MODIFIED``/``DELETED`` and the object as the API
serves it) folds into an immutable :class:`Disruptions`; what a pool lost is read back per
workload (the Deployment, StatefulSet or LeaderWorkerSet a pool scales). The watch itself
is a thin adapter (:mod:`autoscaler.controller.kube`); the loop reconciles at once when an
event reports a new loss instead of waiting for the interval.

Recognised, each a loss counted once per pod:

- a pod with the ``DisruptionTarget`` condition (Kubernetes 1.26+ sets it before the
  kubelet shuts a node down, the taint manager or pod GC deletes pods of a tainted or
  vanished node, the scheduler preempts, or an eviction lands);
- a pod failed with reason ``Shutdown``, ``NodeShutdown`` or ``Terminated`` (graceful node
  shutdown; GKE's message for a preempted VM);
- a node with a termination notice: the taints ``cloud.google.com/impending-node-termination``
  (GKE spot and preemptible VMs), ``aws-node-termination-handler/spot-itn``,
  ``.../asg-lifecycle-termination`` and ``.../scheduled-maintenance`` (AWS Node Termination
  Handler), ``node.kubernetes.io/out-of-service`` (a node shut down), or the condition
  ``VMEventScheduled=True`` (AKS's node problem detector: a Preempt or other VM event is
  scheduled); or a node deleted. Every pod known on it is lost; a notice withdrawn gives
  them back.

A pod still ready when it is lost counts in ``lost`` until it is gone: the planner starts
its replacement at once rather than after the pod vanishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autoscaler.controller.status import parse_time

Json = Mapping[str, Any]
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

NOTICE_TAINTS = {
    "cloud.google.com/impending-node-termination": "GKE termination notice",
    "aws-node-termination-handler/spot-itn": "AWS spot interruption notice",
    "aws-node-termination-handler/asg-lifecycle-termination": "AWS ASG termination",
    "aws-node-termination-handler/scheduled-maintenance": "AWS scheduled maintenance",
    "node.kubernetes.io/out-of-service": "node out of service",
}
NOTICE_CONDITIONS = {"VMEventScheduled": "Azure VM event scheduled"}
SHUTDOWN_REASONS = {"Shutdown", "NodeShutdown", "Terminated"}


@dataclass(frozen=True, slots=True)
class PodFacts:
    namespace: str
    name: str
    workload: str
    """The pool's scale target: a ReplicaSet's owner Deployment, or the direct owner."""
    node: str
    ready: bool
    disrupted: str | None
    """Why the pod itself says it is going (None: it does not)."""
    created_at: float | None = None
    deletion_cost: str | None = None
    """Its ``controller.kubernetes.io/pod-deletion-cost`` annotation, if any."""


@dataclass(frozen=True, slots=True)
class Loss:
    namespace: str
    workload: str
    pod: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class Disruptions:
    pods: Mapping[str, PodFacts] = field(default_factory=dict)
    noticed: Mapping[str, str] = field(default_factory=dict)
    """Nodes with a termination notice, and which."""
    losses: tuple[Loss, ...] = ()
    """Every pod lost within the window, oldest first; one entry per pod."""

    def lost_now(self, namespace: str, workload: str) -> int:
        """Pods of the workload lost but still ready: capacity about to go."""
        doomed = {(x.namespace, x.pod) for x in self.losses if x.workload == workload}
        return sum(
            1
            for p in self.pods.values()
            if p.namespace == namespace and p.workload == workload and p.ready
            if (p.namespace, p.name) in doomed
        )

    def loss_times(self, namespace: str, workload: str) -> tuple[float, ...]:
        return tuple(
            x.at for x in self.losses if x.namespace == namespace and x.workload == workload
        )

    def pods_of(self, namespace: str, workload: str) -> tuple[PodFacts, ...]:
        return tuple(
            p for p in self.pods.values() if p.namespace == namespace and p.workload == workload
        )


def workload_of(pod: Json) -> str:
    meta = pod.get("metadata") or {}
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
    if not owners:
        return ""
    owner = owners[0]
    name = str(owner.get("name", ""))
    pod_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if owner.get("kind") == "ReplicaSet" and pod_hash and name.endswith(f"-{pod_hash}"):
        return name[: -len(pod_hash) - 1]
    return name


def _condition(obj: Json, kind: str) -> Json | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            found: Json = c
            return found
    return None


def pod_facts(pod: Json) -> PodFacts:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = _condition(pod, "Ready")
    target = _condition(pod, "DisruptionTarget")
    disrupted = None
    if target is not None and target.get("status") == "True":
        disrupted = f"DisruptionTarget: {target.get('reason') or 'unknown'}"
    elif status.get("phase") == "Failed" and status.get("reason") in SHUTDOWN_REASONS:
        disrupted = f"failed: {status['reason']}"
    return PodFacts(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        workload=workload_of(pod),
        node=str((pod.get("spec") or {}).get("nodeName") or ""),
        ready=ready is not None and ready.get("status") == "True",
        disrupted=disrupted,
        created_at=parse_time(meta.get("creationTimestamp")),
        deletion_cost=(meta.get("annotations") or {}).get(DELETION_COST),
    )


def node_notice(node: Json) -> str | None:
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("key") in NOTICE_TAINTS:
            return NOTICE_TAINTS[taint["key"]]
    for kind, reason in NOTICE_CONDITIONS.items():
        condition = _condition(node, kind)
        if condition is not None and condition.get("status") == "True":
            return reason
    return None


def _key(p: PodFacts) -> str:
    return f"{p.namespace}/{p.name}"


def _lose(state: Disruptions, pods: list[PodFacts], why: str, now: float) -> tuple[Loss, ...]:
    counted = {(x.namespace, x.pod) for x in state.losses}
    return tuple(
        Loss(p.namespace, p.workload, p.name, why, now)
        for p in pods
        if p.workload and (p.namespace, p.name) not in counted
    )


def observe_pod(
    state: Disruptions, event: str, pod: Json, now: float
) -> tuple[Disruptions, tuple[Loss, ...]]:
    """The state after one pod event, and the losses it newly reports."""
    facts = pod_facts(pod)
    pods = dict(state.pods)
    why = facts.disrupted or state.noticed.get(facts.node)
    if event == "DELETED":
        pods.pop(_key(facts), None)
    else:
        pods[_key(facts)] = facts
    new = _lose(state, [facts], why, now) if why else ()
    return replace(state, pods=pods, losses=(*state.losses, *new)), new


def observe_node(
    state: Disruptions, event: str, node: Json, now: float
) -> tuple[Disruptions, tuple[Loss, ...]]:
    name = str((node.get("metadata") or {}).get("name", ""))
    why = "node deleted" if event == "DELETED" else node_notice(node)
    noticed = dict(state.noticed)
    on_node = [p for p in state.pods.values() if p.node == name]
    if why is None:
        if name not in noticed:
            return state, ()
        del noticed[name]  # notice withdrawn: its pods are not going after all
        gone = {(p.namespace, p.name) for p in on_node if p.disrupted is None}
        kept = tuple(x for x in state.losses if (x.namespace, x.pod) not in gone)
        return replace(state, noticed=noticed, losses=kept), ()
    noticed[name] = why
    new = _lose(state, on_node, f"{why} on {name}", now)
    return replace(state, noticed=noticed, losses=(*state.losses, *new)), new


def forget_before(state: Disruptions, since: float) -> Disruptions:
    """Drop losses older than ``since`` unless their pod is still there (still going)."""
    present = {(p.namespace, p.name) for p in state.pods.values()}
    kept = tuple(x for x in state.losses if x.at >= since or (x.namespace, x.pod) in present)
    return replace(state, losses=kept) if len(kept) != len(state.losses) else state
