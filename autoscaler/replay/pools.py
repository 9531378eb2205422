"""Capacity pools of the what-if: what a replica costs, how long it takes to start, how often
spot takes it back. Typed and validated at load (unknown keys rejected).

Defaults are for Llama-3.1-8B on one H100 80GB per replica, each replica on its own node:

- **Prices** (AWS us-east-1, https://aws.amazon.com/ec2/pricing/on-demand/ after the June 2025
  P5 price cut of up to 45%): p5.4xlarge (1x H100 80GB) $6.88/h on demand. Spot: 35% of that,
  $2.41/h, the issue's assumption; AWS's spot page showed $3.78/GPU-h (55%) for p5.48xlarge in
  us-east-1 (March 2026), Google Cloud advertises 60-91% off for spot GPUs
  (https://cloud.google.com/spot-vms/pricing).
- **Provisioning** (node + image + model load, 6 min): a GPU node from the cloud and joined to
  the cluster, 150 s ("node 0->1 ... takes minutes", ai.wmx.dev cold-start notes; Karpenter
  launches are 1-3 min); a vLLM image of about 10 GB (CUDA 2.8 GB, torch 1.4 GB, other libs,
  BentoML's "Cold-starting LLMs on Kubernetes", April 2025), 120 s; 16 GB of weights to HBM,
  torch.compile and CUDA graph capture, 90 s. BentoML measured 10 minutes for an unoptimised
  Llama 3.1 8B container, Microsoft (techcommunity, April 2026) found vLLM startup, not the
  pull, dominant; 6 minutes sits between an optimised and an unoptimised start.
- **Preemption notice**: 2 minutes on AWS (EC2 User Guide, "Spot Instance interruption
  notices"); Google Cloud and Azure give 30 s.
- **Preemption rates**: AWS's Spot Instance Advisor puts p5 (H100) in its 10-20% band (share
  of capacity reclaimed per month, May 2025). Interruptions are correlated: in 2,635 AWS and
  Azure interruptions, co-interruptions in one instance type and zone came within 3 minutes
  in over 92% of cases (Spot-and-Scoot, arXiv:2604.16457), and SkyServe (arXiv:2411.01438)
  spreads replicas over zones against exactly that. Defaults: an individual hazard of 0.01
  per replica-hour (far above the Advisor's monthly average: a stress level), one mass
  preemption a day taking half the spot replicas, after which spot capacity is gone for an
  hour, plus one more unavailability window a day (mean 30 min).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

CapacityType = Literal["spot", "on-demand"]

ON_DEMAND_PRICE = 6.88  # $/h, AWS p5.4xlarge (1x H100 80GB), us-east-1
SPOT_PRICE = round(0.35 * ON_DEMAND_PRICE, 2)  # $2.41/h


class PoolSpec(BaseModel):
    """One capacity pool (a Deployment on its own node pool). Times in seconds of the
    scenario's clock; rates per replica-hour or per day of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    capacity_type: CapacityType
    price_per_hour: float = Field(gt=0)
    min_replicas: int = Field(default=0, ge=0)
    max_replicas: int = Field(default=32, ge=1)
    node_launch_s: float = Field(default=150.0, ge=0)
    image_pull_s: float = Field(default=120.0, ge=0)
    model_load_s: float = Field(default=90.0, ge=0)
    notice_s: float = Field(default=120.0, ge=0, description="preemption notice")
    preemptions_per_replica_hour: float = Field(default=0.0, ge=0)
    mass_preemptions_per_day: float = Field(default=0.0, ge=0)
    mass_preemption_share: float = Field(default=0.5, gt=0, le=1)
    unavailable_after_mass_s: float = Field(default=3600.0, ge=0)
    unavailable_per_day: float = Field(default=0.0, ge=0)
    unavailable_mean_s: float = Field(default=1800.0, gt=0)
    mass_preemptions_at: tuple[float, ...] = ()
    """Extra mass preemptions at these times (tests, what-ifs)."""
    unavailable_windows: tuple[tuple[float, float], ...] = ()
    """Extra (start, end) windows without spot capacity."""

    @property
    def provisioning_s(self) -> float:
        return self.node_launch_s + self.image_pull_s + self.model_load_s


def spot_pool(name: str = "spot") -> PoolSpec:
    return PoolSpec(
        name=name,
        capacity_type="spot",
        price_per_hour=SPOT_PRICE,
        preemptions_per_replica_hour=0.01,
        mass_preemptions_per_day=1.0,
        unavailable_per_day=1.0,
    )


def on_demand_pool(name: str = "on-demand") -> PoolSpec:
    return PoolSpec(name=name, capacity_type="on-demand", price_per_hour=ON_DEMAND_PRICE)


PRESETS: dict[str, Callable[[], tuple[PoolSpec, ...]]] = {
    "spot+on-demand": lambda: (spot_pool(), on_demand_pool()),
    "on-demand": lambda: (on_demand_pool(),),
    "spot": lambda: (spot_pool(),),
}

_POOLS = TypeAdapter(tuple[PoolSpec, ...])


class PoolsError(ValueError):
    """A --pools value that is no preset, file or valid YAML list of pools."""


def parse_pools(spec: str | None) -> tuple[PoolSpec, ...]:
    """A preset name (``spot+on-demand``, the default; ``on-demand``; ``spot``), a YAML or
    JSON file, or an inline YAML list of pools."""
    if spec is None:
        return PRESETS["spot+on-demand"]()
    if spec in PRESETS:
        return PRESETS[spec]()
    try:
        with open(spec) as handle:
            text = handle.read()
    except OSError:
        text = spec
    try:
        pools = _POOLS.validate_python(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as error:
        presets = ", ".join(PRESETS)
        raise PoolsError(f"--pools: not a preset ({presets}) nor pools: {error}") from error
    names = [p.name for p in pools]
    if not pools or len(set(names)) != len(names):
        raise PoolsError("--pools: give at least one pool, each with its own name")
    return pools
