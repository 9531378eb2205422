"""Settings of ``tidegate autoscaler``: typed, validated at start-up, from a YAML file and
flags (flags win). An unknown key or a bad value stops the controller with a message
naming the field.

```yaml
namespace: llm               # ModelScalers to reconcile (omit: every namespace)
interval_s: 15
signals:
  prometheus: {url: http://prometheus.monitoring:9090, window_s: 120}
  # or, without Prometheus, every gateway and (optionally) worker:
  # scrape: {gateways: [http://10.0.0.5:8000], workers: [http://10.0.1.7:8000]}
leader_election: {enabled: true, lease_name: tidegate-autoscaler}
```
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrometheusSettings(_Section):
    url: str = Field(pattern=r"^https?://", description="Prometheus's base URL")
    window_s: float = Field(120.0, ge=10, description="rate and percentile window")
    timeout_s: float = Field(5.0, gt=0)
    down_query: str | None = Field(
        None, description="PromQL above 0 while a gateway is not scraped (signals then stale)"
    )


class ScrapeSettings(_Section):
    gateways: tuple[str, ...] = Field(min_length=1, description="every gateway's base URL")
    workers: tuple[str, ...] = Field((), description="workers' base URLs (vLLM's queue)")
    window_s: float = Field(60.0, gt=0, description="rates and percentiles cover this span")
    timeout_s: float = Field(3.0, gt=0)


class SignalSettings(_Section):
    prometheus: PrometheusSettings | None = None
    scrape: ScrapeSettings | None = None
    timeout_s: float = Field(10.0, gt=0, description="longest wait for one pass's signals")

    @model_validator(mode="after")
    def _exactly_one(self) -> SignalSettings:
        if (self.prometheus is None) == (self.scrape is None):
            raise ValueError("set exactly one of signals.prometheus and signals.scrape")
        return self


def _identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


class LeaseResource(_Section):
    """Where the Lease lives: coordination.k8s.io/v1 leases in a cluster; a stand-in CRD
    with the same fields where that API is not served (the tests' API server)."""

    group: str = Field("coordination.k8s.io", pattern=r"^[a-z0-9.-]+$")
    version: str = Field("v1", pattern=r"^v[0-9]+((alpha|beta)[0-9]+)?$")
    resource: str = Field("leases", pattern=r"^[a-z0-9-]+$")


class LeaderElectionSettings(_Section):
    enabled: bool = True
    lease_resource: LeaseResource = LeaseResource()
    lease_name: str = Field("tidegate-autoscaler", min_length=1)
    namespace: str | None = Field(None, description="the Lease's namespace (default: namespace)")
    identity: str = Field(default_factory=_identity, min_length=1)
    lease_duration_s: int = Field(15, ge=2)
    renew_deadline_s: float = Field(10.0, gt=0)
    retry_period_s: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _timing(self) -> LeaderElectionSettings:
        if not self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("need retry_period_s < renew_deadline_s < lease_duration_s")
        return self


class DisruptionSettings(_Section):
    """Watching pods and nodes for spot preemption and termination notices (needs RBAC to
    list and watch pods in the namespace and nodes in the cluster)."""

    enabled: bool = False
    pod_selector: str = Field(
        "tidegate.dev/pool", description="label selector of the pools' worker pods"
    )
    watch_nodes: bool = Field(True, description="termination notices on nodes")
    watch_timeout_s: int = Field(300, ge=10, description="a watch is restarted this often")
    mark_leaving: bool = Field(
        True, description="on scale-down, mark the pods to go with the lowest deletion cost"
    )


class HealthSettings(_Section):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535, description="/healthz; 0 turns it off")


class ControllerSettings(_Section):
    namespace: str | None = Field(None, description="ModelScalers' namespace; null: all")
    interval_s: float = Field(15.0, gt=0)
    auth: Literal["auto", "in-cluster", "kubeconfig"] = "auto"
    kubeconfig: Path | None = None
    context: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    signals: SignalSettings
    leader_election: LeaderElectionSettings = LeaderElectionSettings()
    health: HealthSettings = HealthSettings()
    disruptions: DisruptionSettings = DisruptionSettings()

    @model_validator(mode="after")
    def _lease_namespace(self) -> ControllerSettings:
        le = self.leader_election
        if le.enabled and not (le.namespace or self.namespace):
            raise ValueError("leader_election.namespace is needed when namespace is null")
        return self

    @property
    def lease_namespace(self) -> str:
        return self.leader_election.namespace or self.namespace or "default"


class SettingsError(Exception):
    """Settings failed validation; the message lists every problem, one a line."""


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(
    config_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> ControllerSettings:
    raw: dict[str, Any] = {}
    if config_file is not None:
        if not config_file.is_file():
            raise SettingsError(f"config file not found: {config_file}")
        loaded = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{config_file}: expected a mapping at the top")
        raw = loaded
    try:
        return ControllerSettings.model_validate(_merge(raw, overrides or {}))
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        ]
        raise SettingsError("\n".join(lines)) from exc
