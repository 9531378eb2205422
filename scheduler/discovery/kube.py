"""The one module that imports the Kubernetes client: list and watch the workers' slices.

It uses the client's generic custom-object calls, which speak plain JSON for any API group:
``GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices`` is the same request whether
the resource is built in or a CRD. So the code that lists and watches EndpointSlices in a
cluster is the code the tests run against a real (CRD-only) API server with a stand-in
resource; only :class:`ApiResource` differs. The watch stream is read line by line, raw,
so ``ERROR`` events reach :mod:`scheduler.discovery.slices` as the server sent them.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from scheduler.discovery.bridge import Publish, ThreadedDiscovery
from scheduler.discovery.settings import KubernetesDiscoverySettings
from scheduler.discovery.slices import GONE, Json, PortChoice, SliceView, WatchExpired
from scheduler.discovery.watch import Backoff, follow

CONNECT_TIMEOUT_S = 5.0
LIST_TIMEOUT_S = 30.0
PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class ApiResource:
    group: str
    version: str
    plural: str


ENDPOINT_SLICES = ApiResource("discovery.k8s.io", "v1", "endpointslices")


def api_client(
    auth: str, kubeconfig: Path | None = None, context: str | None = None
) -> client.ApiClient:
    """A client configured from the pod's service account or a kubeconfig, without touching
    the Kubernetes library's process-wide default configuration."""
    configuration = client.Configuration()
    if auth == "in-cluster" or (auth == "auto" and "KUBERNETES_SERVICE_HOST" in os.environ):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    return client.ApiClient(configuration)


class KubeSliceApi:
    """:class:`scheduler.discovery.watch.SliceApi` over the Kubernetes API."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        label_selector: str,
        watch_timeout_s: int,
        resource: ApiResource = ENDPOINT_SLICES,
    ) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._namespace = namespace
        self._selector = label_selector
        self._watch_timeout_s = watch_timeout_s
        self._resource = resource
        self._response: Any = None
        self._lock = threading.Lock()

    def _call(self, **params: Any) -> Any:
        r = self._resource
        try:
            return self._objects.list_namespaced_custom_object(
                r.group,
                r.version,
                self._namespace,
                r.plural,
                label_selector=self._selector,
                **params,
            )
        except ApiException as exc:
            if exc.status == GONE:
                raise WatchExpired(str(exc.reason)) from exc
            raise

    def list(self) -> tuple[Sequence[Json], str]:
        items: list[Json] = []
        token: str | None = None
        while True:
            page = self._call(
                limit=PAGE_SIZE,
                _continue=token,
                _request_timeout=(CONNECT_TIMEOUT_S, LIST_TIMEOUT_S),
            )
            items += page.get("items") or []
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                return items, str(metadata.get("resourceVersion", ""))

    def watch(self, resource_version: str) -> Iterator[Json]:
        response = self._call(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout_s,
            _preload_content=False,
            # A dead connection shows as silence: give up a little after the server would have.
            _request_timeout=(CONNECT_TIMEOUT_S, self._watch_timeout_s + 30),
        )
        with self._lock:
            self._response = response
        try:
            for line in _lines(response):
                yield json.loads(line)
        finally:
            with self._lock:
                self._response = None
            response.release_conn()

    def interrupt(self) -> None:
        """Unblock a watch that waits on its socket (called from another thread)."""
        with self._lock:
            response = self._response
        if response is not None:
            shutdown = getattr(response, "shutdown", None)  # urllib3 >= 2.3
            (shutdown or response.close)()


def _lines(response: Any) -> Iterator[bytes]:
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending


def kubernetes_discovery(
    settings: KubernetesDiscoverySettings,
    on_change: Callable[[frozenset[str]], None],
    *,
    resource: ApiResource = ENDPOINT_SLICES,
) -> ThreadedDiscovery:
    """Discovery of worker URLs from EndpointSlices, ready to ``start()`` on the event loop."""
    api = KubeSliceApi(
        api_client(settings.auth, settings.kubeconfig, settings.context),
        namespace=settings.namespace,
        label_selector=settings.label_selector,
        watch_timeout_s=settings.watch_timeout_s,
        resource=resource,
    )
    view = SliceView(port=PortChoice(settings.port_name, settings.scheme))
    backoff = Backoff(settings.retry_initial_s, settings.retry_max_s)

    def loop_body(publish: Publish, stop: threading.Event) -> None:
        follow(api, view, publish, stop, backoff=backoff, rng=random.Random())

    return ThreadedDiscovery(loop_body, on_change, interrupt=api.interrupt)
