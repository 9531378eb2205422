"""Planned requests against a real simulated worker: the server counts the prompt the
planner meant, and ``ignore_eos`` makes the output exactly the sampled length."""

from __future__ import annotations

import random

import httpx
import orjson

from loadtests.tracefile import DEFAULT_TRACE, LengthLimits, LengthSampler, load_trace
from loadtests.traffic import TrafficPlanner, TrafficSpec, Weighted
from tests.harness import MODEL, sim_workers


def test_prompt_and_output_lengths_match_the_plan_on_a_simulated_worker():
    trace = load_trace(DEFAULT_TRACE)
    rng = random.Random(11)
    sampler = LengthSampler(trace, rng, LengthLimits(max_output_tokens=40))
    spec = TrafficSpec(models=Weighted(((MODEL, 1.0),)), stream_ratio=0.0, system_prompt_tokens=30)
    planner = TrafficPlanner(spec, rng)
    with sim_workers(1) as (worker,), httpx.Client(base_url=worker.url, timeout=30) as client:
        conversation = None
        for _ in range(12):
            conversation, plan = planner.plan(conversation, sampler.sample())
            reply = client.post("/v1/chat/completions", content=plan.body, headers=plan.headers)
            assert reply.status_code == 200, reply.text
            usage = reply.json()["usage"]
            assert usage["prompt_tokens"] == plan.prompt_tokens
            assert usage["completion_tokens"] == plan.max_tokens
            text = reply.json()["choices"][0]["message"]["content"]
            conversation.add_reply(text, usage["completion_tokens"])
        assert orjson.loads(plan.body)["messages"][0]["role"] == "system"
