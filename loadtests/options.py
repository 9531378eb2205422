"""The load test's own command-line options, checked once into a typed config.

Locust parses them (``--shape replay --trace FILE --slo ...`` beside its own ``-u``, ``-t``,
``--csv``); :func:`load_config` turns the parsed namespace into a frozen, validated
``LoadTestConfig``, so a typo or an impossible value stops the run before any load is sent.
Everything here also works in Locust's web UI, where the options appear as fields.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loadtests.slo import SloError, Target, build_targets
from loadtests.tracefile import DEFAULT_TRACE

ShapeName = Literal["constant", "step", "spike", "replay"]


class ConfigError(ValueError):
    pass


def add_arguments(parser: Any) -> None:
    """Register the options on Locust's parser (an argparse-compatible parser)."""
    group = parser.add_argument_group("Tidegate load test")
    add = group.add_argument
    add(
        "--shape",
        choices=["constant", "step", "spike", "replay"],
        default="constant",
        help="constant: -u users for -t; step/spike: closed-loop ramps; replay: the trace's "
        "own arrival times (open loop)",
    )
    add(
        "--trace",
        default=str(DEFAULT_TRACE),
        help="trace CSV (arrival_s,input_tokens,output_tokens[,hash_ids]); default: a "
        "300-row sample of the Azure 2023 conversation trace",
    )
    add("--speedup", type=float, default=1.0, help="replay: divide arrival times by this")
    add("--max-requests", type=int, default=0, help="stop after this many requests (0: no cap)")
    add(
        "--models",
        default="",
        help="model[:weight],... (default: the first model the server lists)",
    )
    add(
        "--priorities",
        default="",
        help="priority[:weight],... sent as x-priority "
        "(e.g. critical:1,standard:8,sheddable:1; default: none sent)",
    )
    add("--stream-ratio", type=float, default=1.0, help="fraction of requests that stream")
    add("--max-turns", type=int, default=8, help="turns per conversation at most")
    add(
        "--session-mode",
        choices=["trace", "append"],
        default="trace",
        help="trace: every prompt is as long as its sampled row; append: the row's length "
        "is the new message, so prompts grow with each turn",
    )
    add(
        "--system-prompt-tokens",
        type=int,
        default=0,
        help="a system prompt, the same for every conversation, of this many tokens",
    )
    add("--max-input-tokens", type=int, default=0, help="cap sampled prompt lengths (0: none)")
    add("--max-output-tokens", type=int, default=0, help="cap sampled output lengths (0: none)")
    add(
        "--no-ignore-eos",
        action="store_true",
        help="do not send ignore_eos (for servers that reject it)",
    )
    add(
        "--think-time",
        type=float,
        default=0.0,
        help="closed-loop shapes: seconds a user waits between requests",
    )
    add("--seed", type=int, default=0, help="random seed for lengths, texts and mixes")
    add(
        "--itl-events",
        choices=["request", "token"],
        default="request",
        help="request: one ITL sample per stream, its mean inter-token latency; token: one "
        "per gap between token events",
    )
    add("--api-key", default="", help="sent as a bearer token (default: $OPENAI_API_KEY)")
    add("--start-users", type=int, default=1, help="step: users at the start")
    add("--step-users", type=int, default=5, help="step: users added per step")
    add("--step-time", type=float, default=30.0, help="step: seconds per step")
    add("--steps", type=int, default=5, help="step: number of steps")
    add("--base-users", type=int, default=2, help="spike: users before and after the spike")
    add("--spike-users", type=int, default=20, help="spike: users during the spike")
    add("--spike-at", type=float, default=30.0, help="spike: seconds before it starts")
    add("--spike-time", type=float, default=30.0, help="spike: how long it lasts (s)")
    add("--shape-time", type=float, default=120.0, help="spike: whole run (s)")
    add("--replay-users", type=int, default=8, help="replay: users at the start")
    add("--replay-max-users", type=int, default=1000, help="replay: the pool never grows past")
    add(
        "--drain-time",
        type=float,
        default=60.0,
        help="replay: after the last arrival, seconds to wait for answers",
    )
    add("--slo", default="", help="targets, e.g. 'ttft_p95_ms=500,itl_p95_ms=50,error_rate=0.01'")
    add("--slo-file", default="", help="YAML/JSON file of SLO targets (--slo overrides)")
    add(
        "--report-png",
        default="",
        help="where the PNG report goes (default: PREFIX_report.png with --csv PREFIX)",
    )


class LoadTestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    shape: ShapeName
    trace: Path
    speedup: float = Field(gt=0, allow_inf_nan=False)
    max_requests: int | None = Field(ge=1)
    models: str
    priorities: str
    stream_ratio: float = Field(ge=0, le=1)
    max_turns: int = Field(ge=1)
    session_mode: Literal["trace", "append"]
    system_prompt_tokens: int = Field(ge=0)
    max_input_tokens: int | None = Field(ge=1)
    max_output_tokens: int | None = Field(ge=1)
    ignore_eos: bool
    think_time: float = Field(ge=0)
    seed: int
    itl_events: Literal["request", "token"]
    api_key: str
    start_users: int = Field(ge=0)
    step_users: int = Field(ge=0)
    step_time: float = Field(gt=0)
    steps: int = Field(ge=1)
    base_users: int = Field(ge=0)
    spike_users: int = Field(ge=1)
    spike_at: float = Field(ge=0)
    spike_time: float = Field(gt=0)
    shape_time: float = Field(gt=0)
    replay_users: int = Field(ge=1)
    replay_max_users: int = Field(ge=1)
    drain_time: float = Field(ge=0)
    slo: tuple[Target, ...]
    report_png: Path | None

    @model_validator(mode="after")
    def _consistent(self) -> LoadTestConfig:
        if self.replay_max_users < self.replay_users:
            raise ValueError("replay_max_users must be >= replay_users")
        return self


def _none_if_zero(value: int) -> int | None:
    return value or None


def load_config(options: argparse.Namespace) -> LoadTestConfig:
    """Validate the parsed options; raises ``ConfigError`` naming the bad option."""
    try:
        slo = build_targets(options.slo_file or None, options.slo or None)
    except SloError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        return LoadTestConfig(
            shape=options.shape,
            trace=Path(options.trace),
            speedup=options.speedup,
            max_requests=_none_if_zero(options.max_requests),
            models=options.models,
            priorities=options.priorities,
            stream_ratio=options.stream_ratio,
            max_turns=options.max_turns,
            session_mode=options.session_mode,
            system_prompt_tokens=options.system_prompt_tokens,
            max_input_tokens=_none_if_zero(options.max_input_tokens),
            max_output_tokens=_none_if_zero(options.max_output_tokens),
            ignore_eos=not options.no_ignore_eos,
            think_time=options.think_time,
            seed=options.seed,
            itl_events=options.itl_events,
            api_key=options.api_key,
            start_users=options.start_users,
            step_users=options.step_users,
            step_time=options.step_time,
            steps=options.steps,
            base_users=options.base_users,
            spike_users=options.spike_users,
            spike_at=options.spike_at,
            spike_time=options.spike_time,
            shape_time=options.shape_time,
            replay_users=options.replay_users,
            replay_max_users=options.replay_max_users,
            drain_time=options.drain_time,
            slo=slo,
            report_png=Path(options.report_png) if options.report_png else None,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            if e["loc"]
            else e["msg"]
            for e in exc.errors()
        )
        raise ConfigError(problems) from None
