import math

import pytest

from scheduler.admission import (
    AdmissionQueue,
    SaturationPolicy,
    Ticket,
    endpoint_saturation,
    pool_saturation,
)
from scheduler.endpoint import PoolSnapshot
from tests.scheduler.support import NOW, ep


@pytest.mark.parametrize(
    ("endpoint", "in_flight", "policy", "expected"),
    [
        (ep("a", 0), 0, SaturationPolicy(), 0.0),
        (ep("a", 4), 0, SaturationPolicy(queue_threshold=8), 0.5),
        (ep("a", 8), 0, SaturationPolicy(queue_threshold=8), 1.0),
        (ep("a", 0, kv=0.95), 0, SaturationPolicy(kv_threshold=0.95), 1.0),
        (ep("a", 1, kv=0.5), 0, SaturationPolicy(queue_threshold=2, kv_threshold=1.0), 0.5),
        (ep("a", 0), 10, SaturationPolicy(queue_threshold=4, max_running=8), 0.5),  # 2 unseen
        (ep("a", 0), 10, SaturationPolicy(queue_threshold=4), 0.0),  # max_running unknown
        (ep("a", 0, age=30), 0, SaturationPolicy(), math.inf),  # stale counts as full
        (ep("a", 0, healthy=False), 0, SaturationPolicy(), math.inf),
    ],
)
def test_endpoint_saturation(endpoint, in_flight, policy, expected):
    assert endpoint_saturation(endpoint, "m", in_flight, NOW, 5.0, policy) == expected


def test_pool_has_room_while_any_worker_does():
    snapshot = PoolSnapshot((ep("a", 16), ep("b", 2), ep("c", 0, models=("other",))))
    assert pool_saturation(snapshot, {}, "m", NOW, 5.0, SaturationPolicy()) == 0.25
    assert pool_saturation(snapshot, {}, "x", NOW, 5.0, SaturationPolicy()) == math.inf


def ticket(priority=1, tenant="t"):
    return Ticket(priority=priority, tenant=tenant, arrived=0.0)


def drain(queue):
    out = []
    while (t := queue.pop()) is not None:
        out.append(t)
    return out


def test_priority_first_then_tenants_round_robin_then_fifo():
    queue = AdmissionQueue(max_queue=100, ttft_slo_s=10)
    a1, a2, a3 = ticket(tenant="a"), ticket(tenant="a"), ticket(tenant="a")
    b1, b2 = ticket(tenant="b"), ticket(tenant="b")
    crit, low = ticket(priority=2, tenant="a"), ticket(priority=0, tenant="c")
    for t in (a1, a2, a3, low, b1, b2, crit):
        assert queue.offer(t, 0.0) is None
    assert drain(queue) == [crit, a1, b1, a2, b2, a3, low]
    assert len(queue) == 0


def test_a_busy_tenant_cannot_starve_a_quiet_one():
    queue = AdmissionQueue(max_queue=1000, ttft_slo_s=10)
    noisy = [ticket(tenant="noisy") for _ in range(100)]
    for t in noisy:
        queue.offer(t, 0.0)
    quiet = ticket(tenant="quiet")
    queue.offer(quiet, 0.0)
    order = drain(queue)
    assert order.index(quiet) <= 1


def test_removed_tickets_are_gone_and_bounded_queue_sheds():
    queue = AdmissionQueue(max_queue=2, ttft_slo_s=10)
    first, second = ticket(), ticket()
    queue.offer(first, 0.0)
    queue.offer(second, 0.0)
    shed = queue.offer(ticket(), 0.0)
    assert shed is not None and shed.reason == "queue_full" and shed.retry_after_s >= 1
    assert queue.remove(first) and not queue.remove(first)
    assert drain(queue) == [second]


def test_predicted_wait_beyond_the_slo_is_shed_at_once():
    queue = AdmissionQueue(max_queue=1000, ttft_slo_s=2.0, min_rate_samples=5)
    for i in range(50):  # the pool completes 10 requests a second
        queue.completed(i * 0.1)
    now = 5.0
    admitted = sum(queue.offer(ticket(), now) is None for _ in range(40))
    assert 18 <= admitted <= 21  # about 20 ahead = 2 s of wait at 10/s
    shed = queue.offer(ticket(), now)
    assert shed is not None and shed.reason == "predicted_wait"
    # A higher priority only waits behind its own level and above.
    assert queue.offer(ticket(priority=2), now) is None


def test_no_prediction_until_the_rate_is_known():
    queue = AdmissionQueue(max_queue=1000, ttft_slo_s=0.001, min_rate_samples=5)
    queue.completed(0.0)
    assert all(queue.offer(ticket(), 1.0) is None for _ in range(10))


@pytest.mark.parametrize(
    ("policy", "priority", "max_running"),
    [
        (SaturationPolicy(max_running=224, priority_headroom=((2, 32),)), 2, 256),
        (SaturationPolicy(max_running=224, priority_headroom=((2, 32),)), 3, 256),
        (SaturationPolicy(max_running=224, priority_headroom=((2, 32),)), 1, 224),
        (SaturationPolicy(max_running=64, priority_headroom=((1, 8), (2, 32))), 1, 72),
        (SaturationPolicy(max_running=64, priority_headroom=((1, 8), (2, 32))), 2, 96),
        (SaturationPolicy(max_running=None, priority_headroom=((2, 32),)), 2, None),
    ],
)
def test_headroom_lets_urgent_priorities_run_more_per_worker(policy, priority, max_running):
    assert policy.for_priority(priority).max_running == max_running


def test_headroom_admits_critical_to_a_worker_full_for_the_rest():
    snapshot = PoolSnapshot((ep("a", 0),))
    policy = SaturationPolicy(queue_threshold=1, max_running=224, priority_headroom=((2, 32),))
    in_flight = {"a": 240}
    for priority, full in ((1, True), (2, False)):
        value = pool_saturation(snapshot, in_flight, "m", NOW, 5.0, policy.for_priority(priority))
        assert (value >= 1.0) is full


def test_peek_and_count_ahead_follow_pop_order():
    queue = AdmissionQueue(max_queue=100, ttft_slo_s=10)
    assert queue.peek() is None and queue.waiting_at_or_above(0) == 0
    low, std_a, std_b, crit = ticket(0), ticket(1, "a"), ticket(1, "b"), ticket(2)
    for t in (low, std_a, std_b, crit):
        queue.offer(t, 0.0)
    assert [queue.waiting_at_or_above(p) for p in (0, 1, 2, 3)] == [4, 3, 1, 0]
    order = []
    while (first := queue.peek()) is not None:
        assert queue.pop() is first
        order.append(first)
    assert order == [crit, std_a, std_b, low]


@pytest.mark.parametrize(("ours", "theirs"), [(2, -2), (1, -1), (0, 0)])
def test_engine_priority_serves_urgent_first_in_vllm_order(ours, theirs):
    from scheduler.admission import engine_priority

    assert engine_priority(ours) == theirs


SLOTS = SaturationPolicy(
    queue_threshold=1, max_running=224, priority_headroom=((2, 32),), slots_only_at_or_above=2
)


@pytest.mark.parametrize(
    ("name", "endpoint", "in_flight", "priority", "saturation"),
    [
        ("critical: a long engine queue does not hold it", ep("a", 50), 100, 2, 100 / 256),
        ("critical: nor a full KV cache", ep("a", 0, kv=0.99), 128, 2, 0.5),
        ("critical: every slot ours is full", ep("a", 0), 256, 2, 1.0),
        ("critical: stale data still counts as full", ep("a", 0, age=60.0), 0, 2, math.inf),
        ("standard: the engine queue holds it", ep("a", 50), 100, 1, 50.0),
    ],
)
def test_slots_only_admits_engine_ordered_priorities_on_free_slots(
    name, endpoint, in_flight, priority, saturation
):
    snapshot = PoolSnapshot((endpoint,))
    rule = SLOTS.for_priority(priority)
    value = pool_saturation(snapshot, {"a": in_flight}, "m", NOW, 5.0, rule)
    assert value == pytest.approx(saturation), name
