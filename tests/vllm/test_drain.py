"""When a draining worker stops vLLM (pure), and reading what it polls."""

from __future__ import annotations

import pytest

from workers.vllm.drain import (
    Decision,
    Observation,
    Reading,
    decide,
    engine_load,
    http_in_flight,
)

OK_IDLE = Observation(Reading.OK, http_in_flight=0, engine_load=0)


@pytest.mark.parametrize(
    ("observation", "elapsed_s", "decision"),
    [
        (OK_IDLE, 0.0, Decision.STOP_IDLE),
        (OK_IDLE, 99.0, Decision.STOP_IDLE),
        (Observation(Reading.OK, http_in_flight=1), 1.0, Decision.WAIT),
        (Observation(Reading.OK, engine_load=2), 1.0, Decision.WAIT),
        # Engine idle but a response still being written: wait for its last byte.
        (Observation(Reading.OK, http_in_flight=1, engine_load=0), 1.0, Decision.WAIT),
        # Accepted by HTTP, not yet scheduled by the engine: wait too.
        (Observation(Reading.OK, http_in_flight=0, engine_load=1), 1.0, Decision.WAIT),
        (Observation(Reading.OK, http_in_flight=3, engine_load=3), 10.0, Decision.STOP_GRACE_OVER),
        (Observation(Reading.OK, http_in_flight=3), 9.99, Decision.WAIT),
        (Observation(Reading.REFUSED), 0.0, Decision.STOP_GONE),
        (Observation(Reading.FAILED), 1.0, Decision.WAIT),
        (Observation(Reading.FAILED), 10.0, Decision.STOP_GRACE_OVER),
    ],
)
def test_decide(observation, elapsed_s, decision):
    assert decide(observation, elapsed_s=elapsed_s, grace_s=10.0) is decision


def test_zero_grace_stops_at_once_even_when_busy():
    busy = Observation(Reading.OK, http_in_flight=5, engine_load=5)
    assert decide(busy, elapsed_s=0.0, grace_s=0.0) is Decision.STOP_GRACE_OVER


VLLM_PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 2.0
vllm:num_requests_running{engine="1",model_name="tiny"} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny"} 4.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="tiny",reason="capacity"} 4.0
# HELP vllm:kv_cache_usage_perc KV-cache usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.5
vllm:request_success_total{engine="0",finished_reason="abort",model_name="tiny"} 7.0
"""


@pytest.mark.parametrize(
    ("page", "load"),
    [
        (VLLM_PAGE, 7.0),
        ("", 0.0),
        ("vllm:num_requests_running 0\nvllm:num_requests_waiting 0\n", 0.0),
    ],
)
def test_engine_load(page, load):
    assert engine_load(page) == load


def test_http_in_flight():
    assert http_in_flight(b'{"draining": true, "in_flight": 3}') == 3


@pytest.mark.parametrize("body", [b"[]", b'{"in_flight": -1}', b'{"in_flight": true}', b"{}"])
def test_http_in_flight_refuses_what_is_not_a_status(body):
    with pytest.raises(ValueError):
        http_in_flight(body)
