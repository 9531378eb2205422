"""The Kubernetes adapter against a real API server (kubeconfig auth, paged list, watch,
resourceVersion handling), with a CRD standing in for EndpointSlices.

The server is upstream apiextensions-apiserver on etcd (see shared/k8s/README.md): it
serves CRDs only, so the slices here live in ``discovery.tidegate.test/v1``; the adapter's
requests differ from a cluster's only in that group. The server is shared with other
modules (tests/k8s_server.py): skipped where it or etcd is missing, failed under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

kubernetes = pytest.importorskip("kubernetes")

from scheduler.discovery import kube  # noqa: E402
from scheduler.discovery.kube import ApiResource, KubeSliceApi, api_client  # noqa: E402
from scheduler.discovery.settings import KubernetesDiscoverySettings  # noqa: E402
from tests.k8s_server import register_crd  # noqa: E402

STANDIN = ApiResource("discovery.tidegate.test", "v1", "endpointslices")
NAMESPACE = "llm"
SELECTOR = "app.kubernetes.io/instance=tidegate,app.kubernetes.io/component=worker"
WORKER_LABELS = {"app.kubernetes.io/instance": "tidegate", "app.kubernetes.io/component": "worker"}

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "endpointslices.discovery.tidegate.test"},
    "spec": {
        "group": STANDIN.group,
        "scope": "Namespaced",
        "names": {"plural": "endpointslices", "singular": "endpointslice", "kind": "EndpointSlice"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "addressType": {"type": "string"},
                            "endpoints": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                            "ports": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def kubeconfig(kube_apiserver: Path) -> Path:
    return kube_apiserver


@pytest.fixture(scope="module")
def objects(kubeconfig: Path) -> Any:
    api = api_client("kubeconfig", kubeconfig)
    register_crd(api, CRD, NAMESPACE)
    yield kubernetes.client.CustomObjectsApi(api)
    api.close()


def make_slice(
    name: str, endpoints: list[dict[str, Any]], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": f"{STANDIN.group}/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": WORKER_LABELS if labels is None else labels},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
    }


def ep(ip: str, ready: bool = True, terminating: bool = False) -> dict[str, Any]:
    return {
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": ready, "terminating": terminating},
    }


def create(objects: Any, body: dict[str, Any]) -> None:
    objects.create_namespaced_custom_object(STANDIN.group, "v1", NAMESPACE, STANDIN.plural, body)


def replace(objects: Any, name: str, endpoints: list[dict[str, Any]]) -> None:
    current = objects.get_namespaced_custom_object(
        STANDIN.group, "v1", NAMESPACE, STANDIN.plural, name
    )
    current["endpoints"] = endpoints
    objects.replace_namespaced_custom_object(
        STANDIN.group, "v1", NAMESPACE, STANDIN.plural, name, current
    )


def delete(objects: Any, name: str) -> None:
    objects.delete_namespaced_custom_object(STANDIN.group, "v1", NAMESPACE, STANDIN.plural, name)


async def until(seen: list[frozenset[str]], expected: set[str], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not seen or seen[-1] != expected:
        assert time.monotonic() < deadline, f"last published {seen[-1:]}, expected {expected}"
        await asyncio.sleep(0.05)


async def test_discovery_follows_slices_on_a_real_api_server(
    objects: Any, kubeconfig: Path
) -> None:
    create(objects, make_slice("llama-a", [ep("10.0.0.1"), ep("10.0.0.2", ready=False)]))
    create(objects, make_slice("unrelated", [ep("10.9.9.9")], labels={"app": "other"}))
    settings = KubernetesDiscoverySettings(
        namespace=NAMESPACE,
        label_selector=SELECTOR,
        auth="kubeconfig",
        kubeconfig=kubeconfig,
        watch_timeout_s=1,  # renewed several times during the test
        retry_initial_s=0.1,
    )
    seen: list[frozenset[str]] = []
    discovery = kube.kubernetes_discovery(settings, seen.append, resource=STANDIN)
    try:
        assert await discovery.start(first_sync_timeout_s=10)
        assert seen == [{"http://10.0.0.1:8000"}]

        replace(objects, "llama-a", [ep("10.0.0.1"), ep("10.0.0.2")])  # model loaded
        await until(seen, {"http://10.0.0.1:8000", "http://10.0.0.2:8000"})

        await asyncio.sleep(2.5)  # past two watch timeouts: renewed from the last version
        replace(objects, "llama-a", [ep("10.0.0.1", ready=False, terminating=True), ep("10.0.0.2")])
        await until(seen, {"http://10.0.0.2:8000"})

        create(objects, make_slice("qwen-a", [ep("10.0.1.1")]))
        await until(seen, {"http://10.0.0.2:8000", "http://10.0.1.1:8000"})
        delete(objects, "llama-a")
        await until(seen, {"http://10.0.1.1:8000"})
    finally:
        started = time.monotonic()
        await discovery.stop(join_timeout_s=5)
        assert time.monotonic() - started < 5  # the blocked watch was interrupted
        for name in ("qwen-a", "unrelated"):
            with contextlib.suppress(kubernetes.client.exceptions.ApiException):
                delete(objects, name)


def test_list_follows_continue_tokens_and_returns_the_lists_version(
    objects: Any, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"page-{i}" for i in range(3)]
    for i, name in enumerate(names):
        create(objects, make_slice(name, [ep(f"10.1.0.{i}")]))
    monkeypatch.setattr(kube, "PAGE_SIZE", 1)
    api = KubeSliceApi(
        api_client("kubeconfig", kubeconfig),
        namespace=NAMESPACE,
        label_selector=SELECTOR,
        watch_timeout_s=1,
        resource=STANDIN,
    )
    try:
        items, version = api.list()
        assert sorted(i["metadata"]["name"] for i in items) == names
        assert int(version) >= max(int(i["metadata"]["resourceVersion"]) for i in items)
        events = list(api.watch(version))  # nothing changed: ends quietly at its timeout
        assert all(e["type"] == "BOOKMARK" for e in events)
    finally:
        for name in names:
            delete(objects, name)
