"""The autoscaler's one module that imports the Kubernetes client.

Everything goes through the client's generic custom-object calls, which speak plain JSON
to ``/apis/GROUP/VERSION/namespaces/NS/RESOURCE[/NAME[/scale|/status]]``: the same request
whether the resource is built in (``apps/v1`` Deployments, ``coordination.k8s.io/v1``
Leases) or a CRD. So the tests run this code against a real, CRD-only API server with
stand-in resources, and a cluster differs only in the group/version/resource named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from autoscaler.controller.api import Conflict, Json, KubeError, NotFound
from autoscaler.controller.reconcile import TargetState
from autoscaler.controller.spec import GROUP, PLURAL, VERSION, ScaleTargetRef, is_paused
from scheduler.discovery.kube import ApiResource, api_client

__all__ = ["LEASES", "KubeLeases", "KubeScalers", "KubeWatch", "close", "connect"]

TIMEOUT_S = (5.0, 30.0)
FIELD_MANAGER = "tidegate-autoscaler"
LEASES = ApiResource("coordination.k8s.io", "v1", "leases")
SCALERS = ApiResource(GROUP, VERSION, PLURAL)


def _call(what: str, fn: Callable[[], object]) -> Json:
    """The JSON the call answered, with API errors mapped onto KubeError and kin."""
    try:
        answer = fn()
    except ApiException as exc:
        message = f"{what}: {exc.status} {exc.reason}"
        if exc.status == 404:
            raise NotFound(message) from exc
        if exc.status == 409:
            raise Conflict(message) from exc
        raise KubeError(message, exc.status or 0) from exc
    except OSError as exc:  # urllib3's connection errors
        raise KubeError(f"{what}: {exc}") from exc
    return answer if isinstance(answer, dict) else {}


def connect(auth: str, kubeconfig: Path | None, context: str | None) -> client.ApiClient:
    """A client from the pod's service account or a kubeconfig; KubeError if neither works."""
    try:
        return api_client(auth, kubeconfig, context)
    except (ConfigException, OSError) as exc:
        raise KubeError(f"no Kubernetes configuration: {exc}") from exc


def close(api: client.ApiClient) -> None:
    api.close()  # type: ignore[no-untyped-call]


def _replicas(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


class KubeScalers:
    """:class:`autoscaler.controller.api.ScalerApi` over the Kubernetes API."""

    def __init__(self, api: client.ApiClient, resource: ApiResource = SCALERS) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._resource = resource

    def list_scalers(self, namespace: str | None) -> Sequence[Json]:
        r = self._resource
        if namespace is None:
            answer = _call(
                f"list {r.plural}",
                lambda: self._objects.list_cluster_custom_object(
                    r.group, r.version, r.plural, _request_timeout=TIMEOUT_S
                ),
            )
        else:
            answer = _call(
                f"list {r.plural} in {namespace}",
                lambda: self._objects.list_namespaced_custom_object(
                    r.group, r.version, namespace, r.plural, _request_timeout=TIMEOUT_S
                ),
            )
        items: list[Json] = answer.get("items") or []
        return items

    def read_target(self, namespace: str, ref: ScaleTargetRef) -> TargetState:
        gvr = ref.gvr
        what = f"{ref.kind} {namespace}/{ref.name}"
        scale: Json = _call(
            f"read the scale of {what}",
            lambda: self._objects.get_namespaced_custom_object_scale(
                gvr.group,
                gvr.version,
                namespace,
                gvr.resource,
                ref.name,
                _request_timeout=TIMEOUT_S,
            ),
        )
        target: Json = _call(
            f"read {what}",
            lambda: self._objects.get_namespaced_custom_object(
                gvr.group,
                gvr.version,
                namespace,
                gvr.resource,
                ref.name,
                _request_timeout=TIMEOUT_S,
            ),
        )
        return TargetState(
            spec_replicas=_replicas((scale.get("spec") or {}).get("replicas")),
            status_replicas=_replicas((scale.get("status") or {}).get("replicas")),
            ready_replicas=_replicas((target.get("status") or {}).get("readyReplicas")),
            resource_version=str((scale.get("metadata") or {}).get("resourceVersion", "")),
            paused=is_paused(target.get("metadata")),
        )

    def set_replicas(
        self, namespace: str, ref: ScaleTargetRef, replicas: int, resource_version: str
    ) -> None:
        gvr = ref.gvr
        # A merge patch naming the resourceVersion: the server applies it only to that
        # version (409 otherwise), so a decision is never applied over a newer state.
        body = {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}}
        _call(
            f"scale {ref.kind} {namespace}/{ref.name}",
            lambda: self._objects.patch_namespaced_custom_object_scale(
                gvr.group,
                gvr.version,
                namespace,
                gvr.resource,
                ref.name,
                body,
                field_manager=FIELD_MANAGER,
                _content_type="application/merge-patch+json",
                _request_timeout=TIMEOUT_S,
            ),
        )

    def write_status(self, namespace: str, name: str, status: Json) -> None:
        r = self._resource
        _call(
            f"write the status of {r.plural} {namespace}/{name}",
            lambda: self._objects.patch_namespaced_custom_object_status(
                r.group,
                r.version,
                namespace,
                r.plural,
                name,
                {"status": status},
                field_manager=FIELD_MANAGER,
                _content_type="application/merge-patch+json",
                _request_timeout=TIMEOUT_S,
            ),
        )


class KubeLeases:
    """:class:`autoscaler.controller.api.LeaseApi` for one namespace."""

    def __init__(
        self, api: client.ApiClient, namespace: str, resource: ApiResource = LEASES
    ) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._namespace = namespace
        self._resource = resource

    def get_lease(self, name: str) -> Json | None:
        r = self._resource
        try:
            lease: Json = _call(
                f"read lease {name}",
                lambda: self._objects.get_namespaced_custom_object(
                    r.group,
                    r.version,
                    self._namespace,
                    r.plural,
                    name,
                    _request_timeout=TIMEOUT_S,
                ),
            )
        except NotFound:
            return None
        return lease

    def create_lease(self, body: Json) -> Json:
        r = self._resource
        body = {**body, "apiVersion": f"{r.group}/{r.version}"}
        created: Json = _call(
            "create lease",
            lambda: self._objects.create_namespaced_custom_object(
                r.group,
                r.version,
                self._namespace,
                r.plural,
                body,
                field_manager=FIELD_MANAGER,
                _request_timeout=TIMEOUT_S,
            ),
        )
        return created

    def replace_lease(self, name: str, body: Json) -> Json:
        r = self._resource
        body = {**body, "apiVersion": f"{r.group}/{r.version}"}
        replaced: Json = _call(
            f"replace lease {name}",
            lambda: self._objects.replace_namespaced_custom_object(
                r.group,
                r.version,
                self._namespace,
                r.plural,
                name,
                body,
                field_manager=FIELD_MANAGER,
                _request_timeout=TIMEOUT_S,
            ),
        )
        return replaced


class KubeWatch:
    """Pod and node watches as (event type, object as served) pairs, and pod annotations.

    Not exercised against the test API server (it serves no Pods or Nodes): the code that
    reads these events is pure and tested with recorded ones."""

    def __init__(
        self, api: client.ApiClient, namespace: str | None, pod_selector: str, timeout_s: int
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._selector = pod_selector
        self._timeout_s = timeout_s

    def pods(self) -> Iterator[tuple[str, Json]]:
        if self._namespace is None:
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self._core.list_pod_for_all_namespaces,
                label_selector=self._selector,
                timeout_seconds=self._timeout_s,
            )
        else:
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self._core.list_namespaced_pod,
                self._namespace,
                label_selector=self._selector,
                timeout_seconds=self._timeout_s,
            )
        for event in stream:
            yield str(event["type"]), event["raw_object"]

    def nodes(self) -> Iterator[tuple[str, Json]]:
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            self._core.list_node, timeout_seconds=self._timeout_s
        )
        for event in stream:
            yield str(event["type"]), event["raw_object"]

    def annotate_pod(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        """A merge patch of the pod's annotations (None removes one)."""
        body = {"metadata": {"annotations": dict(annotations)}}
        _call(
            f"annotate pod {namespace}/{name}",
            lambda: self._core.patch_namespaced_pod(
                name, namespace, body, field_manager=FIELD_MANAGER, _request_timeout=TIMEOUT_S
            ),
        )
