"""Pure EndpointSlice logic: which endpoints count, and replaying recorded watch events."""

from __future__ import annotations

import pytest

from scheduler.discovery.slices import (
    PortChoice,
    SliceView,
    WatchExpired,
    WatchFailed,
    ready_urls,
)
from tests.discovery.support import (
    endpoint,
    recorded_events,
    recorded_list,
    slice_obj,
)

HTTP = PortChoice()


@pytest.mark.parametrize(
    ("conditions", "counts"),
    [
        ({"ready": True, "terminating": False}, True),
        ({"ready": None, "terminating": None}, True),  # unset means ready, says the API
        ({"ready": False, "terminating": False}, False),  # still loading its model
        ({"ready": False, "terminating": True}, False),  # draining
        ({"ready": True, "terminating": True}, False),  # publishNotReadyAddresses: still out
    ],
)
def test_an_endpoint_counts_while_ready_and_not_terminating(conditions, counts):
    obj = slice_obj("s", [endpoint("10.0.0.1", **conditions)])
    assert ready_urls(obj, HTTP) == ({"http://10.0.0.1:8000"} if counts else set())


def test_the_named_port_is_used_and_a_slice_without_it_contributes_nothing():
    ports = [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8001}]
    obj = slice_obj("s", [endpoint("10.0.0.1")], ports=ports)
    assert ready_urls(obj, HTTP) == {"http://10.0.0.1:8001"}
    assert ready_urls(obj, PortChoice("grpc")) == set()
    assert ready_urls(obj, PortChoice(None)) == set()  # two ports, no name: ambiguous


def test_an_unnamed_choice_takes_a_slices_only_port():
    obj = slice_obj("s", [endpoint("10.0.0.1")], ports=[{"port": 7000}])
    assert ready_urls(obj, PortChoice(None, "https")) == {"https://10.0.0.1:7000"}


def test_ipv6_addresses_are_bracketed_and_only_the_first_address_is_used():
    ep = endpoint("fd00::5")
    ep["addresses"].append("fd00::6")
    obj = slice_obj("s", [ep], address_type="IPv6")
    assert ready_urls(obj, HTTP) == {"http://[fd00::5]:8000"}


def test_a_slice_with_no_endpoints_or_ports_is_empty_not_an_error():
    assert ready_urls({"metadata": {"name": "s"}, "endpoints": None}, HTTP) == set()


def test_the_recorded_list_gives_the_ready_workers():
    listing = recorded_list()
    view = SliceView().relisted(listing["items"], listing["metadata"]["resourceVersion"])
    assert view.urls == {"http://10.4.1.17:8000", "http://10.4.2.9:8000"}
    assert view.resource_version == "1250"


def test_replaying_a_recorded_rollout_event_by_event():
    listing = recorded_list()
    view = SliceView().relisted(listing["items"], listing["metadata"]["resourceVersion"])
    on_demand, spot_b, spot_c = (
        "http://10.4.1.17:8000",
        "http://10.4.2.9:8000",
        "http://10.4.3.22:8000",
    )
    qwen = "http://10.4.5.3:8000"
    expected = [
        ({on_demand, spot_b}, "1301"),  # a new spot pod appears, not ready: not routed to
        ({on_demand, spot_b, spot_c}, "1388"),  # its model is loaded
        ({on_demand, spot_b, spot_c}, "1400"),  # a bookmark only moves the version on
        ({on_demand, spot_c}, "1422"),  # spot notice: terminating, out at once
        ({on_demand, spot_c}, "1460"),  # and then gone from the slice
        ({on_demand, spot_c, qwen}, "1502"),  # a second model's Service
        ({on_demand, spot_c}, "1577"),  # deleted again
    ]
    events = recorded_events("rollout.jsonl")
    assert len(events) == len(expected)
    for event, (urls, version) in zip(events, expected, strict=True):
        view = view.apply(event)
        assert (view.urls, view.resource_version) == (urls, version), event["type"]


def test_a_410_error_event_means_list_again():
    (event,) = recorded_events("expired.jsonl")
    with pytest.raises(WatchExpired, match="too old resource version"):
        SliceView().apply(event)


def test_other_error_events_and_unknown_types_fail_the_watch():
    error = {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "etcd down"}}
    with pytest.raises(WatchFailed, match="500: etcd down"):
        SliceView().apply(error)
    with pytest.raises(WatchFailed, match="unknown watch event type"):
        SliceView().apply({"type": "SURPRISE", "object": {}})


def test_a_relist_replaces_everything_and_an_expiry_keeps_the_known_workers():
    view = SliceView().relisted([slice_obj("a", [endpoint("10.0.0.1")])], "5")
    expired = view.expired()
    assert expired.resource_version is None
    assert expired.urls == {"http://10.0.0.1:8000"}
    relisted = expired.relisted([slice_obj("b", [endpoint("10.0.0.2")])], "9")
    assert relisted.urls == {"http://10.0.0.2:8000"}  # slice a was deleted while unwatched


def test_a_worker_in_two_slices_stays_until_both_drop_it():
    view = SliceView().relisted(
        [slice_obj("a", [endpoint("10.0.0.1")]), slice_obj("b", [endpoint("10.0.0.1")])], "1"
    )
    view = view.apply({"type": "DELETED", "object": slice_obj("a", [], rv="2")})
    assert view.urls == {"http://10.0.0.1:8000"}
