"""The list-then-watch loop, driven by recorded answers and a stop flag that never sleeps."""

from __future__ import annotations

import random

import pytest

from scheduler.discovery.slices import SliceView, WatchExpired
from scheduler.discovery.watch import Backoff, follow
from tests.discovery.support import (
    ScriptedApi,
    ScriptStop,
    endpoint,
    recorded_events,
    recorded_list,
    slice_obj,
)

ON_DEMAND, SPOT_B, SPOT_C = (
    "http://10.4.1.17:8000",
    "http://10.4.2.9:8000",
    "http://10.4.3.22:8000",
)


def run(
    api: ScriptedApi, backoff: Backoff | None = None
) -> tuple[list[frozenset[str]], ScriptStop]:
    published: list[frozenset[str]] = []
    stop = ScriptStop(api)
    follow(
        api, SliceView(), published.append, stop, backoff=backoff or Backoff(), rng=random.Random(1)
    )
    return published, stop


def listing(rv: str, *slices: dict) -> dict:
    return {"metadata": {"resourceVersion": rv}, "items": list(slices)}


def test_lists_publishes_then_watches_from_the_lists_version_publishing_only_changes():
    api = ScriptedApi([recorded_list()], [recorded_events("rollout.jsonl")])
    published, _ = run(api)
    assert api.watched_from[0] == "1250"
    assert published == [
        {ON_DEMAND, SPOT_B},
        {ON_DEMAND, SPOT_B, SPOT_C},
        {ON_DEMAND, SPOT_C},
        {ON_DEMAND, SPOT_C, "http://10.4.5.3:8000"},
        {ON_DEMAND, SPOT_C},
    ]


def test_an_empty_first_list_is_still_published():
    published, _ = run(ScriptedApi([listing("7")], []))
    assert published == [frozenset()]


def test_a_watch_that_ends_is_renewed_from_the_last_version_seen():
    events = recorded_events("rollout.jsonl")
    api = ScriptedApi([recorded_list()], [events[:3], events[3:]])
    run(api)
    assert api.watched_from[:2] == ["1250", "1400"]  # the bookmark's version
    assert api.list_calls == 1


def test_410_gone_relists_and_what_was_deleted_meanwhile_disappears():
    expired = recorded_events("expired.jsonl")
    after = listing("1800", slice_obj("fresh", [endpoint("10.9.9.9")]))
    api = ScriptedApi([recorded_list(), after], [expired])
    published, stop = run(api)
    assert published == [{ON_DEMAND, SPOT_B}, {"http://10.9.9.9:8000"}]
    assert api.watched_from[:2] == ["1250", "1800"]
    assert stop.waits == [Backoff().initial_s]  # no error backoff for an expiry


def test_a_410_raised_by_the_client_relists_too():
    api = ScriptedApi([recorded_list(), recorded_list()], [WatchExpired("Gone")])
    run(api)
    assert api.list_calls == 2


def test_errors_back_off_keep_the_known_workers_and_resume_from_the_same_version():
    api = ScriptedApi(
        [recorded_list()],
        [ConnectionError("reset"), [ValueError("bad json")], OSError("refused")],
    )
    published, stop = run(api, Backoff(initial_s=1.0, max_s=3.0))
    assert published == [{ON_DEMAND, SPOT_B}]  # never emptied by a failure
    assert api.watched_from == ["1250"] * 4
    assert api.list_calls == 1
    first, second, third, _quiet = stop.waits
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0 and 1.5 <= third <= 3.0


def test_a_failed_first_list_is_retried():
    api = ScriptedApi([ConnectionError("no route"), recorded_list()], [])
    published, stop = run(api)
    assert published == [{ON_DEMAND, SPOT_B}]
    assert len(stop.waits) == 2


def test_a_watch_with_events_resets_the_backoff():
    events = recorded_events("rollout.jsonl")
    api = ScriptedApi([recorded_list()], [OSError("x"), OSError("x"), events[:1], OSError("x")])
    _, stop = run(api, Backoff(initial_s=1.0, max_s=8.0))
    assert stop.waits[2] <= 1.0  # back to the first step after a good watch


@pytest.mark.parametrize("failures", [1, 2, 5, 50])
def test_backoff_grows_to_its_cap_with_jitter(failures):
    backoff = Backoff(initial_s=0.5, max_s=30.0)
    ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
    for seed in range(20):
        assert ceiling / 2 <= backoff.delay(failures, random.Random(seed)) <= ceiling
