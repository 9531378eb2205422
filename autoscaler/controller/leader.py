"""Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection does.

Only the leader reconciles, so two controller replicas never patch the same target from
different memories. A candidate takes the lease when it does not exist, or when its record
has not changed for ``lease_duration_s`` on the candidate's own clock (a holder's clock
may be skewed, so the lease's timestamps are written for humans, never trusted). Every
write carries the resourceVersion read: of two candidates racing, the server lets one win
(409 for the other). A leader that could not renew within ``renew_deadline_s`` stops
acting before anyone else may take over (``renew_deadline_s < lease_duration_s``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from autoscaler.controller.api import Conflict, Json, KubeError, LeaseApi
from autoscaler.controller.status import parse_time

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str | None
    duration_s: int
    acquired_at: float | None = None
    renewed_at: float | None = None
    transitions: int = 0


def micro_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: Json) -> LeaseRecord:
    spec: dict[str, Any] = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        duration_s=int(spec.get("leaseDurationSeconds") or 0),
        acquired_at=parse_time(spec.get("acquireTime")),
        renewed_at=parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def lease_body(name: str, record: LeaseRecord, resource_version: str | None = None) -> Json:
    spec: Json = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.duration_s,
        "leaseTransitions": record.transitions,
    }
    if record.acquired_at is not None:
        spec["acquireTime"] = micro_time(record.acquired_at)
    if record.renewed_at is not None:
        spec["renewTime"] = micro_time(record.renewed_at)
    metadata: Json = {"name": name}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": spec,
    }


class LeaderElector:
    def __init__(
        self,
        leases: LeaseApi,
        name: str,
        identity: str,
        clock: Callable[[], float],
        *,
        lease_duration_s: int = 15,
        renew_deadline_s: float = 10.0,
    ) -> None:
        if not 0 < renew_deadline_s < lease_duration_s:
            raise ValueError("renew_deadline_s must be above 0 and below lease_duration_s")
        self._leases = leases
        self._name = name
        self.identity = identity
        self._clock = clock
        self._duration_s = lease_duration_s
        self._deadline_s = renew_deadline_s
        self._seen: LeaseRecord | None = None
        self._seen_at = 0.0
        self._renewed_at: float | None = None

    def is_leader(self) -> bool:
        """Held and renewed within the renew deadline, on our clock."""
        renewed = self._renewed_at
        return renewed is not None and self._clock() - renewed < self._deadline_s

    def try_acquire_or_renew(self) -> bool:
        """One round: True while this candidate leads. Never raises for API errors."""
        now = self._clock()
        try:
            lease = self._leases.get_lease(self._name)
            if lease is None:
                record = LeaseRecord(self.identity, self._duration_s, now, now, 0)
                self._leases.create_lease(lease_body(self._name, record))
                return self._won(record, now, "created the lease")
            record = record_of(lease)
            if record != self._seen:
                self._seen, self._seen_at = record, now
            version = str((lease.get("metadata") or {}).get("resourceVersion", ""))
            if record.holder == self.identity:
                renewed = LeaseRecord(
                    self.identity,
                    self._duration_s,
                    record.acquired_at,
                    now,
                    record.transitions,
                )
                self._leases.replace_lease(self._name, lease_body(self._name, renewed, version))
                return self._won(renewed, now, None)
            duration = record.duration_s or self._duration_s
            if record.holder and now - self._seen_at < duration:
                self._renewed_at = None
                return False
            taken = LeaseRecord(self.identity, self._duration_s, now, now, record.transitions + 1)
            self._leases.replace_lease(self._name, lease_body(self._name, taken, version))
            return self._won(taken, now, f"took the lease from {record.holder or 'nobody'}")
        except Conflict:
            log.info("lease %s: another candidate wrote first", self._name)
        except KubeError as exc:
            log.warning("lease %s: %s", self._name, exc)
        return self.is_leader()

    def release(self) -> None:
        """Give the lease up on shutdown so another replica need not wait for it to expire."""
        if self._renewed_at is None:
            return
        self._renewed_at = None
        try:
            lease = self._leases.get_lease(self._name)
            if lease is None or record_of(lease).holder != self.identity:
                return
            version = str((lease.get("metadata") or {}).get("resourceVersion", ""))
            released = LeaseRecord(None, 1, None, None, record_of(lease).transitions)
            self._leases.replace_lease(self._name, lease_body(self._name, released, version))
        except KubeError as exc:
            log.warning("lease %s: release failed: %s", self._name, exc)

    def _won(self, record: LeaseRecord, now: float, how: str | None) -> bool:
        self._seen, self._seen_at, self._renewed_at = record, now, now
        if how:
            log.info("lease %s: %s %s", self._name, self.identity, how)
        return True
