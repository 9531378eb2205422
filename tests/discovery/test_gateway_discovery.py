"""The gateway configured with ``discovery.kubernetes``: EndpointSlice events steer real
requests between real (simulated) workers on loopback. Only the Kubernetes API is fed by
the test; everything from the watch loop to the proxy is the gateway's own."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from scheduler.discovery import kube
from scheduler.discovery.bridge import Publish, ThreadedDiscovery
from scheduler.discovery.settings import KubernetesDiscoverySettings
from scheduler.discovery.slices import PortChoice, SliceView
from scheduler.discovery.watch import Backoff, follow
from tests.discovery.support import endpoint, slice_obj
from tests.harness import MODEL, run_gateway, sim_workers, wait_until

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
K8S = {"namespace": "llm", "label_selector": "app.kubernetes.io/component=worker"}


class FedApi:
    """A SliceApi whose list is fixed and whose one long watch yields what the test feeds."""

    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        self.items = list(items)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def list(self) -> tuple[Sequence[dict[str, Any]], str]:
        return self.items, "1"

    def watch(self, resource_version: str) -> Iterator[dict[str, Any]]:
        while (event := self.events.get()) is not None:
            yield event

    def interrupt(self) -> None:
        self.events.put(None)


def worker_slice(url: str, **conditions: Any) -> dict[str, Any]:
    parts = urlsplit(url)
    ports = [{"name": "http", "port": parts.port, "protocol": "TCP"}]
    return slice_obj(
        f"slice-{parts.port}", [endpoint(parts.hostname or "", **conditions)], ports=ports
    )


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FedApi]]:
    """Makes the gateway's Kubernetes discovery read from a FedApi the test holds."""
    apis: list[FedApi] = []

    def fake(settings: KubernetesDiscoverySettings, on_change: Any, **_: Any) -> ThreadedDiscovery:
        api = apis[0]
        view = SliceView(port=PortChoice(settings.port_name, settings.scheme))

        def body(publish: Publish, stop: threading.Event) -> None:
            follow(api, view, publish, stop, backoff=Backoff(0.01, 0.01))

        return ThreadedDiscovery(body, on_change, interrupt=api.interrupt)

    monkeypatch.setattr(kube, "kubernetes_discovery", fake)
    yield apis


def served_by(worker_url: str) -> float:
    page = httpx.get(worker_url + "/metrics").text
    from tests.harness import metric_value

    return metric_value(page, "vllm:request_success_total")


def test_slice_events_steer_requests_and_a_terminating_worker_gets_none_at_once(fed):
    with sim_workers(2) as (a, b):
        fed.append(FedApi([worker_slice(a.url), worker_slice(b.url, ready=False)]))
        with run_gateway([], discovery={"kubernetes": K8S}) as gw:
            pool_urls = lambda: {e.url for e in gw.app.services.pool.snapshot.endpoints}  # noqa: E731
            assert gw.call(pool_urls) == {a.url}  # b is still loading its model
            assert httpx.get(gw.url + "/readyz").status_code == 200
            for _ in range(4):
                httpx.post(gw.base_url + "/chat/completions", json=CHAT).raise_for_status()
            assert (served_by(a.url), served_by(b.url)) == (4, 0)

            fed[0].events.put({"type": "MODIFIED", "object": worker_slice(b.url)})
            healthy = lambda: {e.url for e in gw.app.services.pool.snapshot.endpoints if e.healthy}  # noqa: E731
            wait_until(lambda: gw.call(healthy) == {a.url, b.url}, timeout_s=10)  # and probed

            fed[0].events.put(
                {"type": "MODIFIED", "object": worker_slice(a.url, ready=False, terminating=True)}
            )
            wait_until(lambda: gw.call(pool_urls) == {b.url}, timeout_s=10)
            before = served_by(a.url)
            for _ in range(6):
                httpx.post(gw.base_url + "/chat/completions", json=CHAT).raise_for_status()
            assert served_by(a.url) == before  # not one new request to the draining worker


def test_a_gateway_with_no_workers_found_is_not_ready(fed):
    fed.append(FedApi([]))
    with run_gateway([], discovery={"kubernetes": K8S}) as gw:
        assert httpx.get(gw.url + "/readyz").status_code == 503
        answer = httpx.post(gw.base_url + "/chat/completions", json=CHAT)
        assert answer.status_code in (404, 503)
