"""What the controller needs from the Kubernetes API, as a protocol, and its errors.

:mod:`autoscaler.controller.kube` implements it with the Kubernetes client (the one module
that imports it); tests implement it over a real API server or in memory. The calls are
blocking, as the client's are; the loop runs them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from autoscaler.controller.reconcile import TargetState
from autoscaler.controller.spec import ScaleTargetRef

Json = dict[str, Any]


class KubeError(Exception):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Conflict(KubeError):
    """409: the object changed since it was read (stale resourceVersion), or already exists."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 409)


class NotFound(KubeError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 404)


class ScalerApi(Protocol):
    def list_scalers(self, namespace: str | None) -> Sequence[Json]:
        """Every ModelScaler object in ``namespace`` (None: all namespaces)."""
        ...

    def read_target(self, namespace: str, ref: ScaleTargetRef) -> TargetState:
        """The target's /scale, readiness and paused annotation; NotFound if absent."""
        ...

    def set_replicas(
        self, namespace: str, ref: ScaleTargetRef, replicas: int, resource_version: str
    ) -> None:
        """Patch the target's /scale, only if it is still at ``resource_version`` (else
        Conflict)."""
        ...

    def write_status(self, namespace: str, name: str, status: Json) -> None: ...


class LeaseApi(Protocol):
    """Raw Lease objects (coordination.k8s.io/v1 shape) in one namespace."""

    def get_lease(self, name: str) -> Json | None: ...

    def create_lease(self, body: Json) -> Json:
        """Conflict if it already exists."""
        ...

    def replace_lease(self, name: str, body: Json) -> Json:
        """``body`` carries the resourceVersion read; Conflict if it is stale."""
        ...


class PodApi(Protocol):
    def annotate_pod(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        """Merge ``annotations`` into the pod's (None removes one)."""
        ...
