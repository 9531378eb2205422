"""A request's ``priority`` field through the simulated worker, as vLLM treats it: refused
when non-zero under the default ``fcfs`` policy, and under ``--scheduling-policy priority``
handed to the engine, which starts lower values first."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from tests.workers.sim_helpers import MODEL, JumpClock, asgi_client, make_app
from tests.workers.test_sim_modeled import PROFILE, Recorder
from workers.sim.cli import parse_settings
from workers.sim.core import EngineCore
from workers.sim.engine import GenerationRequest, GenerationStream
from workers.sim.engine_config import EngineConfig
from workers.sim.modeled import ModeledEngine
from workers.sim.settings import SimSettings
from workers.sim.waiting import SchedulingPolicy

ROUTES = [
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/completions", {"model": MODEL, "prompt": "hi"}),
    ("/v1/embeddings", {"model": MODEL, "input": "hi"}),
]


@pytest.mark.parametrize(("path", "body"), ROUTES)
@pytest.mark.parametrize(
    ("priority", "status", "message"),
    [
        (None, 200, None),
        (0, 200, None),
        (-2, 400, "Got priority -2 but Priority scheduling is not enabled."),
        (3, 400, "Got priority 3 but Priority scheduling is not enabled."),
        ("high", 400, "'priority' must be an integer."),
    ],
)
async def test_fcfs_worker_refuses_a_non_zero_priority(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    priority: object,
    status: int,
    message: str | None,
) -> None:
    extra = {} if priority is None else {"priority": priority}
    response = await client.post(path, json={**body, **extra})
    assert response.status_code == status
    if message is not None:
        error = response.json()["error"]
        assert (error["message"], error["type"]) == (message, "BadRequestError")


async def test_priority_worker_hands_the_priority_to_its_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(profile="llama3-8b-a100", scheduling_policy="priority", output_tokens=2)
    engine = app.services.engine
    submitted: list[GenerationRequest] = []
    submit = engine.submit

    def recording_submit(request: GenerationRequest) -> GenerationStream:
        submitted.append(request)
        return submit(request)

    monkeypatch.setattr(engine, "submit", recording_submit)
    async with asgi_client(app) as client:
        for path, body in ROUTES[:2]:
            response = await client.post(path, json={**body, "priority": -2})
            assert response.status_code == 200
        response = await client.post(ROUTES[2][0], json={**ROUTES[2][1], "priority": -2})
        assert response.status_code == 200  # embeddings take it too (no engine queue here)
    assert [r.priority for r in submitted] == [-2, -2]


@pytest.mark.parametrize(
    ("policy", "finish_order"),
    [("fcfs", ["a", "b", "c"]), ("priority", ["c", "a", "b"])],
)
async def test_modeled_engine_starts_waiting_requests_in_policy_order(
    policy: SchedulingPolicy, finish_order: list[str]
) -> None:
    config = EngineConfig(max_num_seqs=1, max_model_len=4096, scheduling_policy=policy)
    core = EngineCore(
        config,
        num_blocks=PROFILE.num_blocks(config),
        max_model_len=4096,
        step_time=PROFILE.step_time,
    )
    recorder = Recorder()
    engine = ModeledEngine(core, clock=JumpClock(0.0), natural_tokens=3, observer=recorder)
    # Submitted together, before the engine's first step: one runs at a time.
    streams = [
        engine.submit(GenerationRequest(name, prompt_tokens=20, priority=priority))
        for name, priority in [("a", 0), ("b", 5), ("c", -5)]
    ]
    await asyncio.gather(*(s.collect() for s in streams))
    assert [r.request_id for r in recorder.records] == finish_order


def test_priority_policy_needs_the_batching_model() -> None:
    with pytest.raises(ValidationError, match="give a profile"):
        SimSettings(model=MODEL, scheduling_policy="priority")
    settings = SimSettings(model=MODEL, profile="cpu-tiny", scheduling_policy="priority")
    assert settings.engine_config().scheduling_policy == "priority"
    assert SimSettings(model=MODEL).engine_config().scheduling_policy == "fcfs"


def test_scheduling_policy_flag(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--port", "1", "--model", MODEL, "--profile", "cpu-tiny"]
    assert parse_settings([*base, "--scheduling-policy", "priority"]).scheduling_policy == (
        "priority"
    )
    with pytest.raises(SystemExit) as exited:
        parse_settings([*base, "--scheduling-policy", "lifo"])
    assert exited.value.code == 2 and "--scheduling-policy" in capsys.readouterr().err
