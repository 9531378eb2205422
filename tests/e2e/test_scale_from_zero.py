"""Scale from zero with every real part: a request held by the gateway wakes the model.

The real API server carries the chart's ModelScaler CRD and a Deployment-like stand-in with
a real ``/scale`` subresource; the real controller loop scrapes the real gateway's
``/metrics``; the gateway's static discovery names the address where the first replica will
listen, and nothing listens there yet. The test plays the kubelet and the
controller-manager: it watches the stand-in's ``spec.replicas`` and, once the controller has
set it to 1, starts a simulated worker on that address and writes the stand-in's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

kubernetes = pytest.importorskip("kubernetes")

from autoscaler.controller.kube import KubeScalers, close, connect  # noqa: E402
from autoscaler.controller.loop import Controller, run  # noqa: E402
from autoscaler.signals.scrape import ScrapeSource  # noqa: E402
from tests.controller.support import pool, scaler_spec  # noqa: E402
from tests.controller.test_kube_apiserver import (  # noqa: E402
    CHART_CRD,
    DEPLOYMENT_STANDIN,
    DEPLOYMENTS,
    controller_manager,
    make_scaler,
    make_target,
    scaler,
    target,
)
from tests.harness import MODEL, RunningGateway, run_gateway, until  # noqa: E402
from tests.k8s_server import register_crd  # noqa: E402
from tidegate.localproc import LocalWorker, free_port, start_sim_worker, stop_all, wait_healthy  # noqa: E402

pytestmark = pytest.mark.slow

POOL = "sim-on-demand"
PASS_INTERVAL_S = 0.25
_namespaces = itertools.count()


@pytest.fixture(scope="module")
def api(kube_apiserver: Path) -> Iterator[Any]:
    client = connect("kubeconfig", kube_apiserver, None)
    register_crd(client, yaml.safe_load(CHART_CRD.read_text()), "default")
    register_crd(client, DEPLOYMENT_STANDIN, "default")
    yield client
    close(client)


def api_objects(api: Any) -> Any:
    return kubernetes.client.CustomObjectsApi(api)


@pytest.fixture
def objects(api: Any) -> Any:
    return api_objects(api)


@pytest.fixture
def ns(objects: Any) -> str:
    """A namespace holding a model at zero replicas, allowed to scale to zero."""
    namespace = f"scale-from-zero-{next(_namespaces)}"
    make_target(objects, namespace, POOL, replicas=0, ready=0)
    pools = [pool("on-demand", "on-demand", POOL, price=1.0, min_replicas=0, max_replicas=2)]
    spec = scaler_spec(pools, model=MODEL, behavior={"scaleToZero": True})
    make_scaler(objects, namespace, "sim", spec)
    return namespace


@contextlib.asynccontextmanager
async def controller_running(api: Any, ns: str, gateway: RunningGateway) -> AsyncIterator[None]:
    """The real controller loop, reading signals from the gateway's /metrics."""
    signals = ScrapeSource([gateway.url], window_s=30)
    controller = Controller(KubeScalers(api), signals, time.time, namespace=ns)
    stop = asyncio.Event()
    loop = asyncio.create_task(run(controller, PASS_INTERVAL_S, stop))
    try:
        deadline = time.monotonic() + 30
        while "status" not in await asyncio.to_thread(scaler, api_objects(api), ns, "sim"):
            assert time.monotonic() < deadline, "the controller never wrote a status"
            await asyncio.sleep(PASS_INTERVAL_S / 5)
        yield  # passes now come every PASS_INTERVAL_S, at no particular phase
    finally:
        stop.set()
        await loop
        await signals.close()


def wait_for_replicas(objects: Any, ns: str, name: str, wanted: int, timeout_s: int) -> None:
    """Watch the target (as the Deployment controller does) until spec.replicas is wanted."""
    listed = objects.list_namespaced_custom_object(*DEPLOYMENTS[:2], ns, DEPLOYMENTS[2])
    for item in listed["items"]:
        if item["metadata"]["name"] == name and item["spec"].get("replicas") == wanted:
            return
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        objects.list_namespaced_custom_object,
        *DEPLOYMENTS[:2],
        ns,
        DEPLOYMENTS[2],
        field_selector=f"metadata.name={name}",
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=timeout_s,
    ):
        if event["object"]["spec"].get("replicas") == wanted:
            watch.stop()
            return
    raise AssertionError(f"{name} never asked for {wanted} replicas within {timeout_s}s")


def body() -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "wake up"}], "max_tokens": 4}


def held(gw: RunningGateway) -> int:
    return int(gw.call(lambda: gw.app.services.gate.queued()[MODEL]))


async def test_a_held_request_scales_the_model_from_zero_and_is_answered(
    api: Any, objects: Any, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="autoscaler.controller.loop")
    port = free_port()
    admission = {"scale_to_zero": {"models": [MODEL], "hold_timeout_s": 60}}
    workers: list[LocalWorker] = []
    with run_gateway([f"http://127.0.0.1:{port}"], admission=admission) as gw:
        async with controller_running(api, ns, gw), httpx.AsyncClient(timeout=90) as client:
            sent = time.monotonic()
            request = asyncio.create_task(
                client.post(gw.base_url + "/chat/completions", json=body())
            )
            await until(lambda: held(gw) == 1)
            try:
                # The kubelet's part: the controller asked for a replica, so start one there.
                await asyncio.to_thread(wait_for_replicas, objects, ns, POOL, 1, 30)
                patched = time.monotonic()
                assert not request.done()  # still held, not refused
                workers.append(start_sim_worker(MODEL, port=port))
                await asyncio.to_thread(wait_healthy, workers, 30)
                ready = time.monotonic()
                controller_manager(objects, ns, POOL, replicas=1, ready=1)
                answer = await request
                answered = time.monotonic()
            finally:
                request.cancel()
                stop_all(workers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]
    assert target(objects, ns, POOL)["spec"]["replicas"] == 1
    scaled = [r.getMessage() for r in caplog.records if "0 -> 1 set by burst" in r.getMessage()]
    assert scaled and "1 requests queued" in scaled[0] and "on-demand=1" in scaled[0]
    print(
        f"request -> /scale patched to 1: {patched - sent:.2f}s; "
        f"worker started and healthy: {ready - patched:.2f}s; "
        f"healthy -> answered: {answered - ready:.2f}s; total {answered - sent:.2f}s"
    )


async def test_with_no_replica_in_time_the_request_gets_503_and_the_replica_still_comes(
    api: Any, objects: Any, ns: str
) -> None:
    admission = {"scale_to_zero": {"models": [MODEL], "hold_timeout_s": 1.5, "retry_after_s": 30}}
    with run_gateway([f"http://127.0.0.1:{free_port()}"], admission=admission) as gw:
        async with controller_running(api, ns, gw), httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(gw.base_url + "/chat/completions", json=body())
            await asyncio.to_thread(wait_for_replicas, objects, ns, POOL, 1, 30)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "model_scaled_to_zero"
    assert answer.headers["retry-after"] == "30"  # by then the replica asked for may be up
