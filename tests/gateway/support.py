"""What the gateway's admission tests share: a gate over probed workers, on a fixed clock."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry

from gateway.admission import AdmissionGate
from gateway.metrics import GatewayMetrics
from gateway.settings import load_settings
from scheduler.pool import EndpointPool, ProbeResult

MODEL = "llama"
NOW = 100.0


def probed_gate(
    workers: Sequence[str], admission: Mapping[str, object]
) -> tuple[AdmissionGate, EndpointPool]:
    """A gate with these admission settings over ``workers``, each probed at ``NOW``
    serving ``MODEL``."""
    pool = EndpointPool()
    pool.set_urls(list(workers))
    for url in workers:
        pool.record_probe(url, ProbeResult(models=frozenset({MODEL})), NOW)
    settings = load_settings(
        overrides={"discovery": {"workers": list(workers)}, "admission": dict(admission)}
    )
    gate = AdmissionGate(settings, pool, GatewayMetrics(CollectorRegistry(), pool), lambda: NOW)
    return gate, pool


async def settle() -> None:
    """Let released waiters run to their end (no time passes)."""
    for _ in range(3):
        await asyncio.sleep(0)
