"""One tuning run, from validated settings to a ``TuneReport``: the composition root of
``tidegate tune``. The clocks are read here only, to report how long the search took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from workers.sim.engine_config import EngineConfig
from workers.sim.profiles import BUILTIN_HARDWARE, BUILTIN_MODELS, load_profile_file
from workers.sim.replay import ReplayRequest
from workers.sim.step_time import HardwareSpec, ModelSpec
from workers.sim.trace import read_trace
from workers.tune.fleet import FleetEvaluator, OnOutcome
from workers.tune.outcome import Slo
from workers.tune.pareto import pareto_front, summarize_groups
from workers.tune.prices import (
    DEFAULT_PRICE_LIST,
    PriceList,
    builtin_price_list,
    load_price_file,
    require_prices,
    resolve_prices,
)
from workers.tune.report import TuneReport
from workers.tune.search import SearchResult, bisect_search, brute_force
from workers.tune.space import SearchSpace, roofline_profiles, split_groups

Positive = Annotated[int, Field(ge=1)]


class TuneError(ValueError):
    """Settings that name an unknown model or GPU, or a trace with nothing in it."""


class TuneSettings(BaseModel):
    """``tidegate tune``'s options, validated before anything runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace: Path
    slo_ttft_p95: float = Field(gt=0, allow_inf_nan=False, description="seconds")
    slo_itl_p95: float = Field(gt=0, allow_inf_nan=False, description="seconds")
    model: str = "llama-3.1-8b"
    gpus: tuple[str, ...] = Field(default=(), description="empty: every GPU with a price")
    tp: tuple[Positive, ...] = Field(default=(1, 2, 4, 8), min_length=1)
    max_num_seqs: tuple[Positive, ...] = Field(default=(64, 128, 256), min_length=1)
    max_num_batched_tokens: tuple[Positive, ...] = Field(default=(2048, 8192), min_length=1)
    max_replicas: int = Field(default=16, ge=1)
    max_model_len: int | None = Field(default=None, ge=2, description="None: longest request")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    block_size: int = Field(default=16, ge=1)
    enable_prefix_caching: bool = True
    price_list: str = DEFAULT_PRICE_LIST
    prices: Path | None = Field(default=None, description="a price file instead of price_list")
    price: tuple[str, ...] = Field(default=(), description="GPU=USD overrides")
    profile_file: Path | None = None
    search: Literal["bisect", "brute"] = "bisect"
    limit: int | None = Field(default=None, ge=1)
    speedup: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    early_stop: bool = True


def resolve_gpus(names: tuple[str, ...], known: list[str]) -> list[str]:
    """Hardware names for ``--gpus``: exact names, or prefixes (``a100`` is every A100)."""
    chosen: list[str] = []
    for name in names:
        matches = [k for k in known if k == name] or [k for k in known if k.startswith(name + "-")]
        if not matches:
            raise TuneError(f"unknown GPU {name!r} (known: {', '.join(known)})")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def _specs(settings: TuneSettings) -> tuple[ModelSpec, dict[str, HardwareSpec]]:
    models = {m.name: m for m in BUILTIN_MODELS}
    hardware = {h.name: h for h in BUILTIN_HARDWARE}
    if settings.profile_file is not None:
        extra = load_profile_file(settings.profile_file)
        models.update((m.name, m) for m in extra.models)
        hardware.update((h.name, h) for h in extra.hardware)
    if settings.model not in models:
        raise TuneError(f"unknown model {settings.model!r} (known: {', '.join(models)})")
    return models[settings.model], hardware


def _price_list(settings: TuneSettings) -> PriceList:
    if settings.prices is not None:
        return load_price_file(settings.prices)
    return builtin_price_list(settings.price_list)


def _price_label(price_list: PriceList, overrides: tuple[str, ...]) -> str:
    label = price_list.name
    if price_list.read_on:
        label += f", read {price_list.read_on}"
    if overrides:
        label += ", with --price overrides"
    return label


def tune(
    settings: TuneSettings,
    *,
    requests: list[ReplayRequest] | None = None,
    on_outcome: OnOutcome | None = None,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.process_time,
) -> TuneReport:
    """Sweep the space over the trace (or ``requests``, already loaded) and judge it."""
    model, hardware = _specs(settings)
    price_list = _price_list(settings)
    prices = resolve_prices(price_list, settings.price)
    known = list(hardware)
    gpus = (
        resolve_gpus(settings.gpus, known) if settings.gpus else [h for h in known if h in prices]
    )
    require_prices(prices, gpus)
    if requests is None:
        requests = read_trace(settings.trace, limit=settings.limit, speedup=settings.speedup)
    if not requests:
        raise TuneError(f"{settings.trace}: no requests")
    max_model_len = settings.max_model_len or max(
        r.prompt_tokens + r.output_tokens for r in requests
    )
    base = EngineConfig(
        max_model_len=max_model_len,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        block_size=settings.block_size,
        enable_prefix_caching=settings.enable_prefix_caching,
    )
    space = SearchSpace(
        hardware=tuple(gpus),
        tp=settings.tp,
        max_num_seqs=settings.max_num_seqs,
        max_num_batched_tokens=settings.max_num_batched_tokens,
        max_replicas=settings.max_replicas,
    )
    profile_for = roofline_profiles(model, hardware)
    groups = space.groups()
    fits, misfits = split_groups(
        groups, profile_for, base, attention_heads=model.num_attention_heads
    )
    slo = Slo(settings.slo_ttft_p95, settings.slo_itl_p95)
    evaluate = FleetEvaluator(
        requests,
        profile_for,
        base,
        prices,
        slo,
        early_stop=settings.early_stop,
        reuse=settings.search != "brute",  # the reference replays everything
        on_outcome=on_outcome,
    )
    started, cpu_started = clock(), cpu_clock()
    result: SearchResult
    if settings.search == "brute":
        result = brute_force(fits, space.max_replicas, evaluate)
    else:
        result = bisect_search(
            fits, space.max_replicas, evaluate, lambda g: prices[g.hardware] * g.tp
        )
    elapsed, cpu = clock() - started, cpu_clock() - cpu_started
    front = pareto_front(result.outcomes)
    arrivals = [r.arrival_s for r in requests]
    return TuneReport(
        model=model.name,
        trace=str(settings.trace),
        num_requests=len(requests),
        trace_span_s=max(arrivals) - min(arrivals),
        max_model_len=max_model_len,
        slo=slo,
        price_list=_price_label(price_list, settings.price),
        prices={h: prices[h] for h in gpus},
        search=settings.search,
        space_size=space.num_candidates,
        elapsed_s=elapsed,
        cpu_s=cpu,
        replays=evaluate.simulations,
        same_as=dict(evaluate.same_as),
        outcomes=result.outcomes,
        front=front,
        recommended=front[0] if front else None,
        groups=summarize_groups(groups, result.outcomes, misfits, result.skipped, front, slo),
        misfits=misfits,
    )
