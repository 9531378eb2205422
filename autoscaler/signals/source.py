"""The seam between reading signals and deciding on them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from autoscaler.policy.observation import Observation

# What the gateway and the workers expose (gateway/metrics.py, vLLM's /metrics).
REQUESTS = "tidegate_requests_total"
TTFT = "tidegate_time_to_first_token_seconds"
ITL = "tidegate_inter_token_latency_seconds"
TPOT = "tidegate_time_per_output_token_seconds"
"""Requests by their mean inter-token latency (one observation per streamed request)."""
HELD = "tidegate_admission_queued_requests"
"""Requests held by a gateway's admission control, per ``model`` (a gauge). Read when a
gateway exposes it; until then the queue is vLLM's waiting requests alone."""
WAITING = "vllm:num_requests_waiting"
QUANTILE = 0.95


class SignalSource(Protocol):
    async def observe(
        self, ready_replicas: Mapping[str, int], now: float
    ) -> dict[str, Observation]:
        """One Observation per model in ``ready_replicas`` (model -> ready replicas), taken
        at ``now`` on the controller's clock. A signal that cannot be had is None; a source
        that could not see everything it should marks the Observation ``fresh=False``."""
        ...

    async def close(self) -> None: ...


def unknown(ready_replicas: Mapping[str, int], now: float) -> dict[str, Observation]:
    """Observations that say nothing is known: the pipeline holds on them."""
    return {
        m: Observation(at=now, ready_replicas=r, fresh=False) for m, r in ready_replicas.items()
    }
