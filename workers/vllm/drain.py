"""When a draining worker may stop vLLM: a pure decision over what the wrapper observed.

The wrapper polls two sources: the drain middleware's count of requests inside vLLM's HTTP
server (a stream counts until its last byte is sent) and the engine's
``vllm:num_requests_running`` + ``vllm:num_requests_waiting``. vLLM is stopped once both are
zero, once nothing listens any more (nothing can be in flight), or when the grace period
is over, whichever comes first.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"


class Reading(enum.Enum):
    """How one poll of the server went."""

    OK = "ok"
    REFUSED = "refused"
    """Nothing listens: vLLM has not bound its port yet, or is gone."""
    FAILED = "failed"
    """Anything else (timeout, bad answer): the load is unknown."""


@dataclass(frozen=True, slots=True)
class Observation:
    reading: Reading
    http_in_flight: int = 0
    engine_load: float = 0.0
    """Running plus waiting requests over every engine and model."""

    @property
    def idle(self) -> bool:
        return self.reading is Reading.OK and self.http_in_flight == 0 and self.engine_load == 0


class Decision(enum.Enum):
    WAIT = "wait"
    STOP_IDLE = "stop_idle"
    STOP_GONE = "stop_gone"
    STOP_GRACE_OVER = "stop_grace_over"


def decide(observation: Observation, *, elapsed_s: float, grace_s: float) -> Decision:
    """Stop or keep waiting, ``elapsed_s`` after the drain began."""
    if observation.reading is Reading.REFUSED:
        return Decision.STOP_GONE
    if observation.idle:
        return Decision.STOP_IDLE
    if elapsed_s >= grace_s:
        return Decision.STOP_GRACE_OVER
    return Decision.WAIT


def engine_load(metrics_page: str) -> float:
    """Running + waiting requests on a vLLM ``/metrics`` page, summed over its series."""
    lines = [line for line in metrics_page.splitlines() if line.startswith((RUNNING, WAITING))]
    total = 0.0
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for sample in family.samples:
            if sample.name in (RUNNING, WAITING):
                total += sample.value
    return total


def http_in_flight(status_body: bytes) -> int:
    """The drain middleware's in-flight count from its status answer."""
    payload = json.loads(status_body)
    count = payload.get("in_flight") if isinstance(payload, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"not a drain status: {status_body[:200]!r}")
    return count
