import random
import re
import zlib

import pytest
from pydantic import ValidationError

from scheduler.config import SchedulerSettings, build_router
from scheduler.request import RoutingRequest, prefix_blocks
from tests.scheduler.support import ctx, ep


def test_defaults_build_both_profiles():
    router = build_router(SchedulerSettings())
    assert set(router.profiles) == {"least-queue", "prefix-aware", "affinity"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"default_profile": "nope"}, "default_profile 'nope' is not a profile"),
        (
            {"profiles": {"p": {"scorers": [{"plugin": "qeue"}]}}, "default_profile": "p"},
            "unknown plugin 'qeue'",
        ),
        (
            {"profiles": {"p": {"filters": ["queue"]}}, "default_profile": "p"},
            "uses 'queue' (queue-depth-scorer, a scorer) as a filter",
        ),
        ({"profiles": {"p": {"picker": "queue"}}, "default_profile": "p"}, "as a picker"),
        ({"plugins": {"x": {"type": "no-such-plugin"}}}, "no-such-plugin"),
        ({"plugins": {"x": {"type": "load-ceiling-filter", "factor": 0.5}}}, "factor"),
        ({"plugins": {"x": {"type": "queue-depth-scorer", "weight": 2}}}, "weight"),
        ({"profiles": {"least-queue": {"scorers": [{"plugin": "queue", "weight": -1}]}}}, "weight"),
    ],
)
def test_bad_config_fails_at_load_naming_the_problem(config, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        SchedulerSettings.model_validate(config)


def test_custom_profile_from_config():
    settings = SchedulerSettings.model_validate(
        {
            "plugins": {
                "kv": {"type": "kv-cache-scorer"},
                "p2c": {"type": "power-of-two-picker"},
                "index": {"type": "prefix-index-scorer", "capacity": 10},
            },
            "profiles": {
                "mine": {
                    "scorers": [{"plugin": "kv"}, {"plugin": "index", "weight": 3}],
                    "picker": "p2c",
                }
            },
            "default_profile": "mine",
        }
    )
    router = build_router(settings)
    endpoints = [ep("a", kv=0.9), ep("b", kv=0.1)]
    decision = router.route(ctx(endpoints), random.Random(0))
    assert decision.endpoint.url == "b"
    assert router.profiles["mine"].observers  # the prefix index learns from decisions


def test_affinity_profile_keeps_a_prefix_on_one_worker_until_it_is_overloaded():
    router = build_router(SchedulerSettings(default_profile="affinity"))
    endpoints = [ep(f"http://w{i}") for i in range(4)]
    req = RoutingRequest(model="m", prefix_blocks=prefix_blocks("s" * 2048, 256))
    home = router.route(ctx(endpoints, request=req), random.Random(0)).endpoint.url
    loaded = {home: 1}
    again = router.route(ctx(endpoints, loaded, request=req), random.Random(1)).endpoint.url
    assert again == home  # a little load does not break affinity
    overloaded = {home: 20}
    moved = router.route(ctx(endpoints, overloaded, request=req), random.Random(2)).endpoint.url
    assert moved != home  # bounded load: the hot home is filtered out


def test_prefix_blocks_chain():
    a = prefix_blocks("x" * 100 + "y" * 100, 50)
    b = prefix_blocks("x" * 100 + "z" * 100, 50)
    assert len(a) == 4 and a[:2] == b[:2] and a[2] != b[2]
    assert prefix_blocks("short", 50) == ()
    assert prefix_blocks("x" * 120, 50) == a[:2]  # only full blocks


def _home_and_next(urls: list[str], key: int) -> tuple[str, str]:
    ranked = sorted(urls, key=lambda url: zlib.crc32(url.encode(), key), reverse=True)
    return ranked[0], ranked[1]


@pytest.mark.parametrize("text", ["system prompt A " * 500, "another long shared prefix " * 300])
@pytest.mark.parametrize("home_waiting", [0, 30])
def test_affinity_replicas_agree_without_sharing_in_flight_counts(text, home_waiting):
    """Three replicas, each counting only its own in-flight requests, send a growing
    conversation to one worker: its home, or (home over the ceiling in the scraped queue
    every replica reads) the same next endpoint in the key's rendezvous order."""
    urls = [f"http://w{i}" for i in range(6)]
    blocks = prefix_blocks(text, 256)
    home, second = _home_and_next(urls, blocks[15])
    endpoints = [ep(url, home_waiting if url == home else 0) for url in urls]
    replicas = [build_router(SchedulerSettings(default_profile="affinity")) for _ in range(3)]
    own: list[dict[str, int]] = [{} for _ in replicas]
    chosen = []
    for turn in range(9):
        replica = turn % 3
        req = RoutingRequest(model="m", prefix_blocks=blocks[: 16 + turn])
        rng = random.Random(turn)
        url = replicas[replica].route(ctx(endpoints, own[replica], request=req), rng).endpoint.url
        own[replica][url] = own[replica].get(url, 0) + 1
        chosen.append(url)
    assert set(chosen) == {home if home_waiting == 0 else second}
