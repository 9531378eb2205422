"""Leader election on a fake clock, over an in-memory Lease store with the API server's
optimistic concurrency. ``recorded/lease.json`` is a Lease in the shape the
coordination.k8s.io/v1 API serves it. (test_kube_apiserver.py runs the same elector
against a real server with a stand-in Lease CRD.)"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from autoscaler.controller.api import Conflict, Json, KubeError
from autoscaler.controller.leader import LeaderElector, LeaseRecord, lease_body, record_of
from autoscaler.controller.loop import Controller, run
from tests.controller.support import T0, FakeClock, FixedSignals, MemoryApi

RECORDED = json.loads((Path(__file__).parent / "recorded" / "lease.json").read_text())
NAME = "tidegate-autoscaler"


class FakeLeases:
    def __init__(self, lease: Json | None = None) -> None:
        self.lease = copy.deepcopy(lease)
        self.failing: KubeError | None = None
        self.writes = 0

    def _check(self) -> None:
        if self.failing is not None:
            raise self.failing

    def get_lease(self, name: str) -> Json | None:
        self._check()
        return copy.deepcopy(self.lease)

    def create_lease(self, body: Json) -> Json:
        self._check()
        if self.lease is not None:
            raise Conflict("leases already exists")
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = "1"
        self.writes += 1
        return copy.deepcopy(self.lease)

    def replace_lease(self, name: str, body: Json) -> Json:
        self._check()
        assert self.lease is not None
        current = self.lease["metadata"]["resourceVersion"]
        if body["metadata"].get("resourceVersion") != current:
            raise Conflict("the object has been modified")
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(int(current) + 1)
        self.writes += 1
        return copy.deepcopy(self.lease)


def elector(leases: Any, identity: str, clock: FakeClock) -> LeaderElector:
    return LeaderElector(leases, NAME, identity, clock, lease_duration_s=15, renew_deadline_s=10)


def test_a_served_lease_reads_into_a_record_and_back() -> None:
    record = record_of(RECORDED)
    assert record.holder == "tidegate-autoscaler-7d9c8b6f5-x2k9q"
    assert (record.duration_s, record.transitions) == (15, 3)
    assert record.renewed_at == pytest.approx(T0 - 1.359888, abs=1e-6)
    body = lease_body(NAME, record, "48213")
    assert body["spec"] == RECORDED["spec"] | {"acquireTime": "2027-01-15T05:12:40.118203Z"}
    assert body["metadata"] == {"name": NAME, "resourceVersion": "48213"}
    assert record_of(body) == record
    assert record_of({"spec": {"holderIdentity": ""}}) == LeaseRecord(None, 0)


def test_the_first_candidate_creates_the_lease_and_renews_it() -> None:
    clock, leases = FakeClock(), FakeLeases()
    a = elector(leases, "a", clock)
    assert a.try_acquire_or_renew() and a.is_leader()
    assert leases.lease is not None and leases.lease["spec"]["holderIdentity"] == "a"
    clock.advance(2)
    assert a.try_acquire_or_renew()
    spec = leases.lease["spec"]
    assert spec["acquireTime"] == "2027-01-15T08:00:00.000000Z"
    assert spec["renewTime"] == "2027-01-15T08:00:02.000000Z"
    assert spec["leaseTransitions"] == 0


def test_expiry_is_judged_on_the_candidates_own_clock() -> None:
    """The holder's renewTime is hours behind our clock (skew), but the record keeps
    changing: a standby must not take over."""
    clock, leases = FakeClock(T0 + 3 * 3600), FakeLeases(RECORDED)
    b = elector(leases, "b", clock)
    assert not b.try_acquire_or_renew()
    for _ in range(10):  # the holder keeps renewing (with its skewed clock)
        clock.advance(5)
        assert leases.lease is not None
        leases.lease["spec"]["renewTime"] = f"2027-01-15T07:59:{clock.now % 60:09.6f}Z"
        leases.lease["metadata"]["resourceVersion"] = str(
            int(leases.lease["metadata"]["resourceVersion"]) + 1
        )
        assert not b.try_acquire_or_renew()
    clock.advance(14)  # the holder stopped; 14 s since b saw a change
    assert not b.try_acquire_or_renew()
    clock.advance(2)
    assert b.try_acquire_or_renew()
    assert leases.lease is not None
    assert leases.lease["spec"]["holderIdentity"] == "b"
    assert leases.lease["spec"]["leaseTransitions"] == 4


def test_a_leader_that_cannot_renew_stops_leading_before_anyone_may_take_over() -> None:
    clock, leases = FakeClock(), FakeLeases()
    a = elector(leases, "a", clock)
    assert a.try_acquire_or_renew()
    leases.failing = KubeError("read lease: 503 Service Unavailable", 503)
    clock.advance(2)
    assert a.try_acquire_or_renew()  # within the renew deadline
    clock.advance(8)
    assert not a.try_acquire_or_renew() and not a.is_leader()  # 10 s without a renewal


def test_a_candidate_that_loses_the_write_race_is_not_leader() -> None:
    clock = FakeClock()

    class CreatedMeanwhile(FakeLeases):
        def get_lease(self, name: str) -> Json | None:
            return None  # read before the other candidate's create landed

    leases = CreatedMeanwhile(lease_body(NAME, LeaseRecord("other", 15, T0, T0)))
    assert not elector(leases, "a", clock).try_acquire_or_renew()


def test_release_hands_over_at_once() -> None:
    clock, leases = FakeClock(), FakeLeases()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    a.release()
    assert not a.is_leader()
    assert leases.lease is not None and leases.lease["spec"]["holderIdentity"] is None
    assert b.try_acquire_or_renew()
    b.release()
    b.release()  # twice is harmless
    assert elector(leases, "c", clock).try_acquire_or_renew()


def test_timings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="renew_deadline_s"):
        LeaderElector(
            FakeLeases(), NAME, "a", FakeClock(), lease_duration_s=10, renew_deadline_s=10
        )


async def test_only_the_leader_reconciles_and_a_lost_lead_forgets() -> None:
    clock, leases = FakeClock(), FakeLeases(lease_body(NAME, LeaseRecord("other", 15, T0, T0), "7"))
    standby = elector(leases, "me", clock)
    standby.try_acquire_or_renew()

    class Counting(MemoryApi):
        passes = 0

        def list_scalers(self, namespace: str | None) -> list[Json]:
            Counting.passes += 1
            return []

    controller = Controller(Counting(), FixedSignals(), clock)
    forgot: list[bool] = []
    controller.forget = lambda: forgot.append(True)  # type: ignore[method-assign]
    stop = asyncio.Event()
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 2:
            clock.advance(16)
            assert standby.try_acquire_or_renew()  # "other" expired: we lead
        if ticks == 4:
            clock.advance(11)  # no renewal since: the lead is lost
        if ticks == 5:
            stop.set()

    await run(controller, 0.001, stop, standby, tick)
    assert ticks == 5
    assert Counting.passes == 2  # ticks 3 and 4
    assert forgot == [True]
