"""The gate with a bound on each worker's prefill backlog: it holds requests while every
worker is at the bound, releases one when a first token comes back, and names the full
workers for routing to skip."""

from __future__ import annotations

import asyncio

import pytest

from gateway.admission import AdmissionGate
from gateway.settings import SettingsError, load_settings
from gateway.upstream import PrefillClaim
from scheduler.pool import EndpointPool
from tests.gateway.support import MODEL, probed_gate, settle

A, B = "http://10.0.0.5:8000", "http://10.0.0.6:8000"
CRITICAL, STANDARD = 2, 1


def gate_with(bound: int | None, **admission: object) -> tuple[AdmissionGate, EndpointPool]:
    return probed_gate([A, B], {"max_prefill_tokens_per_worker": bound, **admission})


@pytest.mark.parametrize(
    ("name", "bound", "backlog", "priority", "saturation", "full"),
    [
        ("unset: a huge backlog changes nothing", None, {A: 10**6, B: 10**6}, STANDARD, 0, set()),
        ("both under", 100, {A: 50, B: 20}, STANDARD, 0.2, set()),
        ("one full: room on the other", 100, {A: 100, B: 40}, STANDARD, 0.4, {A}),
        ("both full: no room", 100, {A: 100, B: 150}, STANDARD, 1.0, {A, B}),
        ("critical keeps the bound", 100, {A: 100, B: 150}, CRITICAL, 1.0, {A, B}),
    ],
)
def test_the_backlog_fills_workers(name, bound, backlog, priority, saturation, full):
    gate, pool = gate_with(bound)
    for url, tokens in backlog.items():
        pool.start_prefill(url, tokens)
    assert gate.saturation(MODEL, priority) == pytest.approx(saturation), name
    assert gate.prefill_full(priority) == full, name


async def test_a_held_request_enters_when_a_first_token_comes_back() -> None:
    gate, pool = gate_with(100)
    claims = [PrefillClaim(pool, url, 100, gate.prefill_done) for url in (A, B)]
    entering = asyncio.ensure_future(gate.enter(MODEL, STANDARD, ""))
    await settle()
    assert not entering.done() and gate.queued()[MODEL] == 1
    claims[1].release()  # B's first token: B has room again
    await settle()
    assert entering.done() and gate.queued()[MODEL] == 0
    assert pool.prefill_tokens == {A: 100, B: 0}


def test_a_claim_is_released_once_whatever_calls_it() -> None:
    gate, pool = gate_with(100)
    woken: list[None] = []
    claim = PrefillClaim(pool, A, 60, lambda: woken.append(None))
    PrefillClaim(pool, A, 30, gate.prefill_done)
    claim.release()
    claim.release()  # the exit path after the first token: no second release
    assert pool.prefill_tokens[A] == 30 and len(woken) == 1


@pytest.mark.parametrize("bad", [0, -5])
def test_a_bound_below_one_token_fails_at_load(bad: int) -> None:
    with pytest.raises(SettingsError, match="max_prefill_tokens_per_worker"):
        load_settings(overrides={"admission": {"max_prefill_tokens_per_worker": bad}})
