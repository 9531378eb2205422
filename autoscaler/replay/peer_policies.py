"""Peer autoscaling policies, re-implemented from their published algorithms and defaults for
side-by-side replay. Each reads only its view (time included), like Tidegate's.

- ``QueueDepthPolicy`` [queue-depth]: KEDA's Prometheus scaler on
  ``sum(vllm:num_requests_waiting)`` with a target of 5 waiting requests per replica (the
  recipe of vLLM production-stack's "Autoscaling with KEDA" tutorial), run by the HPA it
  creates: ``desired = ceil(metric / target)`` (AverageValue), a 10% tolerance, scale-down
  stabilisation over 300 s, and the HPA's default rate limits (up: the larger of +4 pods and
  +100% per 15 s; down: -100% per 15 s), every 15 s (Kubernetes docs, "Horizontal Pod
  Autoscaling", default behaviour).
- ``KpaPolicy`` [kpa]: AIBrix's KPA (``pkg/controller/podautoscaler/scaler/kpa.go``, after
  Knative's): the average concurrency over a 60 s stable and a 6 s panic window (Knative's
  default panic window, 10% of the stable one), ``ceil(value / target)`` each, clamped to
  [ready / 2, 2 x ready]; panic mode while the panic count is at least 2x the ready pods
  (and for a stable window after), in which the count never falls; then a scale-down delay
  (the maximum desired count over the last 30 min, AIBrix's default), every 2 s.
- ``SkyServePolicy`` [skyserve]: SkyPilot's ``FallbackRequestRateAutoscaler``
  (``sky/serve/autoscalers.py``): ``ceil(qps / target_qps_per_replica)`` over a 60 s
  window, applied only after 300 s of consecutive upscale or 1200 s of consecutive
  downscale decisions (every 20 s); spot first, ``base_ondemand_fallback_replicas`` on
  demand always, and with ``dynamic_ondemand_fallback`` one on-demand replica for every spot
  replica wanted but not ready (preempted, provisioning or without capacity).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from autoscaler.replay.cluster import PoolStatus
from autoscaler.replay.policies import ClusterView


@dataclass
class QueueDepthPolicy:
    pool: str
    target_per_replica: float = 5.0
    min_replicas: int = 1
    max_replicas: int = 32
    tolerance: float = 0.1
    scale_down_window_s: float = 300.0
    interval_s: float = 15.0
    name: str = "queue-depth"
    _recommendations: deque[tuple[float, int]] = field(default_factory=deque)

    def initial(self, pools: Sequence[PoolStatus], replicas: int) -> dict[str, int]:
        self._recommendations.append((0.0, replicas))  # as if it had been running
        return {self.pool: replicas}

    def decide(self, view: ClusterView) -> dict[str, int]:
        current = view.pool(self.pool).desired
        metric = view.signals.waiting
        if current > 0 and abs(metric / (self.target_per_replica * current) - 1) <= self.tolerance:
            raw = current
        else:
            raw = math.ceil(metric / self.target_per_replica - 1e-9)
        raw = min(max(raw, self.min_replicas), self.max_replicas)
        recs = self._recommendations
        recs.append((view.at, raw))
        while recs and view.at - recs[0][0] > self.scale_down_window_s:
            recs.popleft()
        stable = max(r for _, r in recs) if raw < current else raw
        if stable > current:
            stable = min(stable, current + max(4, current))
        return {self.pool: min(max(stable, self.min_replicas), self.max_replicas)}


@dataclass
class KpaPolicy:
    pool: str
    target_concurrency: float
    min_replicas: int = 1
    max_replicas: int = 32
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 2.0
    max_scale_down_rate: float = 2.0
    scale_down_delay_s: float = 1800.0
    interval_s: float = 2.0
    name: str = "kpa"
    _samples: deque[tuple[float, float]] = field(default_factory=deque)
    _delay: deque[tuple[float, int]] = field(default_factory=deque)
    _panic_since: float | None = None
    _max_panic_pods: int = 0

    def initial(self, pools: Sequence[PoolStatus], replicas: int) -> dict[str, int]:
        # Knative starts in panic mode above one pod: no scale-down until the windows
        # hold real data.
        if replicas > 1:
            self._panic_since, self._max_panic_pods = 0.0, replicas
        self._delay.append((0.0, replicas))
        return {self.pool: replicas}

    def decide(self, view: ClusterView) -> dict[str, int]:
        now = view.at
        samples = self._samples
        samples.append((now, view.signals.in_flight))
        while samples and now - samples[0][0] >= self.stable_window_s:
            samples.popleft()
        stable = sum(c for _, c in samples) / len(samples)
        recent = [c for t, c in samples if now - t < self.panic_window_s]
        panic = sum(recent) / len(recent)
        ready = max(1, view.pool(self.pool).ready)
        up = math.ceil(self.max_scale_up_rate * ready)
        down = math.floor(ready / self.max_scale_down_rate)
        dspc = math.ceil(stable / self.target_concurrency - 1e-9)
        dppc = math.ceil(panic / self.target_concurrency - 1e-9)
        desired_stable = min(max(dspc, down), up)
        desired_panic = min(max(dppc, down), up)
        over = dppc / ready >= self.panic_threshold
        if over:
            self._panic_since = now
        elif self._panic_since is not None and now - self._panic_since > self.stable_window_s:
            self._panic_since, self._max_panic_pods = None, 0
        desired = desired_stable
        if self._panic_since is not None:
            desired = max(desired, desired_panic, self._max_panic_pods)
            self._max_panic_pods = desired
        delay = self._delay
        delay.append((now, desired))
        while delay and now - delay[0][0] >= self.scale_down_delay_s:
            delay.popleft()
        desired = max(d for _, d in delay)
        return {self.pool: min(max(desired, self.min_replicas), self.max_replicas)}


@dataclass
class SkyServePolicy:
    spot_pool: str | None
    on_demand_pool: str
    target_qps_per_replica: float
    min_replicas: int = 1
    max_replicas: int = 32
    base_ondemand_fallback_replicas: int = 1
    dynamic_ondemand_fallback: bool = True
    upscale_delay_s: float = 300.0
    downscale_delay_s: float = 1200.0
    interval_s: float = 20.0
    name: str = "skyserve"
    target: int = 0
    _up: int = 0
    _down: int = 0

    def initial(self, pools: Sequence[PoolStatus], replicas: int) -> dict[str, int]:
        self.target = replicas
        return self._place(replicas, spot_ready=None)

    def decide(self, view: ClusterView) -> dict[str, int]:
        qps = view.signals.arrival_rps or 0.0
        wanted = math.ceil(qps / self.target_qps_per_replica - 1e-9)
        wanted = min(max(wanted, self.min_replicas), self.max_replicas)
        up_periods = int(self.upscale_delay_s / self.interval_s)
        down_periods = int(self.downscale_delay_s / self.interval_s)
        if self.target == 0:
            self.target = wanted
        elif wanted > self.target:
            self._up, self._down = self._up + 1, 0
            if self._up >= up_periods:
                self.target, self._up = wanted, 0
        elif wanted < self.target:
            self._down, self._up = self._down + 1, 0
            if self._down >= down_periods:
                self.target, self._down = wanted, 0
        else:
            self._up = self._down = 0
        spot_ready = view.pool(self.spot_pool).ready if self.spot_pool else None
        return self._place(self.target, spot_ready)

    def _place(self, target: int, spot_ready: int | None) -> dict[str, int]:
        if self.spot_pool is None:
            return {self.on_demand_pool: target}
        spot = max(0, target - self.base_ondemand_fallback_replicas)
        on_demand = self.base_ondemand_fallback_replicas
        if self.dynamic_ondemand_fallback and spot_ready is not None:
            on_demand += max(0, spot - spot_ready)
        return {self.spot_pool: spot, self.on_demand_pool: on_demand}
