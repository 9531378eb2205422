"""What one GPU costs per hour: built-in public on-demand list prices, a price file, or flags.

Prices are per GPU-hour. Clouds sell these GPUs as 8-GPU instances; the per-GPU price is
the instance price divided by 8, which is what a replica of ``tp`` GPUs costs when
replicas are packed onto shared instances. Each built-in list names where its numbers were
read and when; they go stale, so ``--prices FILE`` and ``--price GPU=USD`` replace them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PriceError(ValueError):
    """A price file that does not validate, a bad ``--price`` flag, or a GPU without price."""


class GpuPrice(BaseModel):
    """The on-demand price of one GPU of a ``HardwareSpec`` for an hour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hardware: str = Field(min_length=1, description="a HardwareSpec name, e.g. h100-80gb")
    usd_per_gpu_hour: float = Field(gt=0, allow_inf_nan=False)
    source: str = ""


class PriceList(BaseModel):
    """Prices read from one place at one time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    source: str = ""
    read_on: str = Field(default="", description="the date the prices were read")
    prices: tuple[GpuPrice, ...]

    def by_hardware(self) -> dict[str, float]:
        return {p.hardware: p.usd_per_gpu_hour for p in self.prices}


# AWS EC2 On-Demand, Linux, US East (N. Virginia), after AWS's June 2025 GPU price cut.
# Instance prices as transcribed from the AWS price list in datareceipts/data-receipts,
# 109-gpu-pricing/hyperscalers.json (retrieved 2026-11-09); per GPU = instance / 8.
AWS_US_EAST_1 = PriceList(
    name="aws",
    source="https://aws.amazon.com/ec2/pricing/on-demand/ (us-east-1, Linux, on-demand)",
    read_on="2026-11-09",
    prices=(
        GpuPrice(
            hardware="h100-80gb", usd_per_gpu_hour=6.88, source="p5.48xlarge, 8x H100 SXM: $55.04/h"
        ),
        GpuPrice(
            hardware="a100-80gb",
            usd_per_gpu_hour=3.4309,
            source="p4de.24xlarge, 8x A100 SXM 80GB: $27.44705/h",
        ),
        GpuPrice(
            hardware="a100-40gb",
            usd_per_gpu_hour=2.7447,
            source="p4d.24xlarge, 8x A100 SXM 40GB: $21.957642/h",
        ),
    ),
)

# Lambda's on-demand GPU cloud, 8-GPU instances, per GPU-hour, as transcribed from
# https://lambda.ai/instances in api-evangelist/lambda-labs,
# plans/lambda-labs-plans-pricing.yml (read 2026-09-20).
LAMBDA = PriceList(
    name="lambda",
    source="https://lambda.ai/instances (on-demand, 8-GPU instances)",
    read_on="2026-09-20",
    prices=(
        GpuPrice(hardware="h100-80gb", usd_per_gpu_hour=3.99, source="8x NVIDIA H100 SXM"),
        GpuPrice(hardware="a100-80gb", usd_per_gpu_hour=2.79, source="8x NVIDIA A100 SXM 80 GB"),
        GpuPrice(hardware="a100-40gb", usd_per_gpu_hour=1.99, source="8x NVIDIA A100 SXM 40 GB"),
    ),
)

BUILTIN_PRICE_LISTS: tuple[PriceList, ...] = (AWS_US_EAST_1, LAMBDA)
DEFAULT_PRICE_LIST = AWS_US_EAST_1.name


def builtin_price_list(name: str) -> PriceList:
    for price_list in BUILTIN_PRICE_LISTS:
        if price_list.name == name:
            return price_list
    known = ", ".join(p.name for p in BUILTIN_PRICE_LISTS)
    raise PriceError(f"unknown price list {name!r} (built in: {known})")


def load_price_file(path: str | Path) -> PriceList:
    """A ``PriceList`` from YAML or JSON (``name``, ``prices: [{hardware, usd_per_gpu_hour}]``)."""
    text = Path(path).read_text()
    try:
        raw = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        return PriceList.model_validate(raw)
    except (ValidationError, ValueError, yaml.YAMLError) as exc:
        raise PriceError(f"{path}: {exc}") from exc


def parse_price_flag(flag: str) -> tuple[str, float]:
    """``h100-80gb=2.5`` -> ("h100-80gb", 2.5)."""
    name, sep, value = flag.partition("=")
    try:
        usd = float(value)
    except ValueError:
        usd = float("nan")
    if not sep or not name or not usd > 0 or usd == float("inf"):
        raise PriceError(f"--price {flag!r}: expected GPU=USD_PER_GPU_HOUR, e.g. h100-80gb=2.5")
    return name, usd


def resolve_prices(base: PriceList, overrides: Iterable[str] = ()) -> dict[str, float]:
    """USD per GPU-hour by hardware name: ``base``, then each ``GPU=USD`` flag on top."""
    prices = base.by_hardware()
    prices.update(parse_price_flag(flag) for flag in overrides)
    return prices


def require_prices(prices: Mapping[str, float], hardware: Iterable[str]) -> None:
    missing = sorted(set(hardware) - set(prices))
    if missing:
        raise PriceError(
            f"no price for {', '.join(missing)}: add --price {missing[0]}=USD_PER_GPU_HOUR "
            "or a --prices file"
        )
