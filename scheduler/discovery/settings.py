"""Settings of Kubernetes discovery (the gateway's ``discovery.kubernetes`` section)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class KubernetesDiscoverySettings(BaseModel):
    """Where the workers' EndpointSlices are and how to read them.

    The Helm chart renders this section; by hand it looks like::

        discovery:
          kubernetes:
            namespace: llm
            label_selector: app.kubernetes.io/instance=tidegate,app.kubernetes.io/component=worker
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(min_length=1, description="namespace of the workers' EndpointSlices")
    label_selector: str = Field(
        min_length=1,
        description="selects the workers' EndpointSlices (they carry their Service's labels)",
    )
    port_name: str | None = Field(
        "http", min_length=1, description="the worker port's name; null takes a slice's only port"
    )
    scheme: Literal["http", "https"] = "http"
    auth: Literal["auto", "in-cluster", "kubeconfig"] = Field(
        "auto", description="auto: in-cluster when KUBERNETES_SERVICE_HOST is set, else kubeconfig"
    )
    kubeconfig: Path | None = Field(None, description="kubeconfig file (default: $KUBECONFIG)")
    context: str | None = Field(None, description="kubeconfig context (default: the current one)")
    watch_timeout_s: int = Field(
        240, ge=1, le=3600, description="server-side life of one watch; then it is renewed"
    )
    initial_sync_timeout_s: float = Field(
        10.0, ge=0, description="how long start-up waits for the first list of workers"
    )
    retry_initial_s: float = Field(0.5, gt=0, description="first wait after a failed list/watch")
    retry_max_s: float = Field(30.0, gt=0, description="longest wait between retries")

    @model_validator(mode="after")
    def _kubeconfig_needs_kubeconfig_auth(self) -> KubernetesDiscoverySettings:
        if self.auth == "in-cluster" and (self.kubeconfig or self.context):
            raise ValueError("kubeconfig and context do not apply to auth: in-cluster")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be at least retry_initial_s")
        return self
