from scheduler.endpoint import EngineStats
from scheduler.pool import EndpointPool, ProbeResult


def probe(models=("m",), waiting=0.0):
    return ProbeResult(
        models=frozenset(models), stats={m: EngineStats(waiting=waiting) for m in models}
    )


def test_new_endpoints_start_unhealthy_until_probed():
    pool = EndpointPool()
    pool.set_urls(["http://a", "http://b"])
    assert [e.healthy for e in pool.snapshot.endpoints] == [False, False]
    pool.record_probe("http://a", probe(), now=10.0)
    a = pool.snapshot.by_url("http://a")
    assert a is not None and a.healthy and a.scraped_at == 10.0 and a.models == {"m"}


def test_failure_marks_unhealthy_and_next_probe_restores():
    pool = EndpointPool()
    pool.set_urls(["http://a"])
    pool.record_probe("http://a", probe(), now=1.0)
    pool.record_failure("http://a", "ConnectionRefused")
    a = pool.snapshot.by_url("http://a")
    assert a is not None and not a.healthy and a.last_error == "ConnectionRefused"
    assert a.models == {"m"}, "a failed worker's models stay known (503, not 404)"
    pool.record_probe("http://a", probe(waiting=3), now=2.0)
    a = pool.snapshot.by_url("http://a")
    assert a is not None and a.healthy and a.waiting("m") == 3


def test_probe_without_model_list_keeps_last_known_models():
    pool = EndpointPool()
    pool.set_urls(["http://a"])
    pool.record_probe("http://a", probe(models=("m",)), now=1.0)
    pool.record_probe("http://a", ProbeResult(models=frozenset()), now=2.0)
    assert pool.snapshot.by_url("http://a").models == {"m"}  # type: ignore[union-attr]


def test_snapshots_are_immutable_views():
    pool = EndpointPool()
    pool.set_urls(["http://a"])
    before = pool.snapshot
    pool.record_probe("http://a", probe(), now=1.0)
    assert before.endpoints[0].healthy is False
    assert pool.snapshot is not before


def test_in_flight_counts_and_membership_changes():
    pool = EndpointPool()
    pool.set_urls(["http://a", "http://b"])
    pool.acquire("http://a")
    pool.acquire("http://a")
    pool.release("http://a")
    assert pool.in_flight == {"http://a": 1, "http://b": 0}
    pool.set_urls(["http://b"])  # a leaves while a request is in flight
    assert [e.url for e in pool.snapshot.endpoints] == ["http://b"]
    pool.release("http://a")
    assert "http://a" not in pool.in_flight
    pool.record_probe("http://a", probe(), now=1.0)  # late probe of a removed worker
    assert pool.snapshot.by_url("http://a") is None


def test_in_flight_tokens_follow_requests():
    pool = EndpointPool()
    pool.set_urls(["http://a"])
    pool.acquire("http://a", 100)
    pool.acquire("http://a", 50)
    assert pool.in_flight_tokens == {"http://a": 150}
    pool.release("http://a", 100)
    assert pool.in_flight_tokens == {"http://a": 50}
    pool.release("http://a", 50)
    assert pool.in_flight_tokens == {"http://a": 0} and pool.in_flight == {"http://a": 0}


def test_healthy_since_marks_the_start_of_each_healthy_run():
    pool = EndpointPool()
    pool.set_urls(["http://a"])

    def since():
        endpoint = pool.snapshot.by_url("http://a")
        assert endpoint is not None
        return endpoint.healthy_since

    assert since() is None
    pool.record_probe("http://a", probe(), now=5.0)
    pool.record_probe("http://a", probe(), now=6.0)
    assert since() == 5.0, "later probes keep when the worker became healthy"
    pool.record_failure("http://a", "ConnectionRefused")
    assert since() is None
    pool.record_probe("http://a", probe(), now=9.0)
    assert since() == 9.0, "back after a failure, it starts a new run (and a new slow start)"
