"""The controller end to end against a real Kubernetes API server.

The chart's ModelScaler CRD is registered as shipped, with a Deployment-like stand-in CRD
(``apps.tidegate.test``, a real ``/scale`` subresource) for the pools' targets: one pass
of the real Kubernetes adapter writes the status, patches ``/scale`` to the planned
numbers, lands a patch that hit a conflict, and leaves a paused pool alone. The test plays
the controller-manager by writing the targets' ``status.replicas``/``readyReplicas``.
Leader election runs against a stand-in Lease CRD (``coordination.tidegate.test``): the
same requests and the same optimistic concurrency as the real Lease API, which this server
does not serve.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes = pytest.importorskip("kubernetes")

from autoscaler.controller import cli  # noqa: E402
from autoscaler.controller.kube import KubeLeases, KubeScalers, connect  # noqa: E402
from autoscaler.controller.leader import LeaderElector  # noqa: E402
from autoscaler.controller.loop import Controller  # noqa: E402
from autoscaler.controller.spec import ScaleTargetRef, parse_spec  # noqa: E402
from scheduler.discovery.kube import ApiResource  # noqa: E402
from tests.controller.support import FakeClock, FixedSignals, pool, scaler_spec  # noqa: E402
from tests.k8s_server import register_crd  # noqa: E402

CHART_CRD = (
    Path(__file__).resolve().parents[2] / "helm/tidegate/crds/modelscalers.tidegate.dev.yaml"
)
APPS = "apps.tidegate.test"
SCALERS = ("tidegate.dev", "v1alpha1", "modelscalers")
DEPLOYMENTS = (APPS, "v1", "deployments")
LEASES = ApiResource("coordination.tidegate.test", "v1", "leases")


def _crd(
    group: str, kind: str, plural: str, schema: dict[str, Any], subresources: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


INT = {"type": "integer"}
DEPLOYMENT_STANDIN = _crd(
    APPS,
    "Deployment",
    "deployments",
    {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"replicas": INT}},
            "status": {"type": "object", "properties": {"replicas": INT, "readyReplicas": INT}},
        },
    },
    {
        "status": {},
        "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"},
    },
)
LEASE_STANDIN = _crd(
    LEASES.group,
    "Lease",
    "leases",
    {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "holderIdentity": {"type": "string", "nullable": True},
                    "leaseDurationSeconds": INT,
                    "acquireTime": {"type": "string", "format": "date-time"},
                    "renewTime": {"type": "string", "format": "date-time"},
                    "leaseTransitions": INT,
                },
            }
        },
    },
    {},
)


@pytest.fixture(scope="module")
def api(kube_apiserver: Path) -> Iterator[Any]:
    client = connect("kubeconfig", kube_apiserver, None)
    register_crd(client, yaml.safe_load(CHART_CRD.read_text()), "default")
    register_crd(client, DEPLOYMENT_STANDIN, "default")
    register_crd(client, LEASE_STANDIN, "default")
    yield client
    client.close()


@pytest.fixture
def objects(api: Any) -> Any:
    return kubernetes.client.CustomObjectsApi(api)


_namespaces = iter(range(1_000_000))


@pytest.fixture
def ns() -> str:
    """A namespace of the test's own (the server has no namespace objects to create)."""
    return f"autoscale-{next(_namespaces)}"


def make_target(
    objects: Any, ns: str, name: str, replicas: int, ready: int, paused: bool = False
) -> None:
    metadata: dict[str, Any] = {"name": name}
    if paused:
        metadata["annotations"] = {"tidegate.dev/paused": "true"}
    body = {
        "apiVersion": f"{APPS}/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {"replicas": replicas},
    }
    objects.create_namespaced_custom_object(*DEPLOYMENTS[:2], ns, DEPLOYMENTS[2], body)
    controller_manager(objects, ns, name, replicas=replicas, ready=ready)


def controller_manager(objects: Any, ns: str, name: str, *, replicas: int, ready: int) -> None:
    """What the Deployment controller would write."""
    body = {"status": {"replicas": replicas, "readyReplicas": ready}}
    objects.patch_namespaced_custom_object_status(*DEPLOYMENTS[:2], ns, DEPLOYMENTS[2], name, body)


def target(objects: Any, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = objects.get_namespaced_custom_object(
        *DEPLOYMENTS[:2], ns, DEPLOYMENTS[2], name
    )
    return found


def make_scaler(
    objects: Any,
    ns: str,
    name: str,
    spec: dict[str, Any],
    annotations: dict[str, str] | None = None,
) -> None:
    body = {
        "apiVersion": "tidegate.dev/v1alpha1",
        "kind": "ModelScaler",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec,
    }
    objects.create_namespaced_custom_object(*SCALERS[:2], ns, SCALERS[2], body)


def scaler(objects: Any, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = objects.get_namespaced_custom_object(*SCALERS[:2], ns, SCALERS[2], name)
    return found


class ConcurrentWriter(KubeScalers):
    """Another writer changes a target between the controller's read and its patch."""

    def __init__(self, client: Any, objects: Any, victim: str) -> None:
        super().__init__(client)
        self._objects_api = objects
        self._victim = victim
        self.interfered = 0

    def set_replicas(
        self, namespace: str, ref: ScaleTargetRef, replicas: int, resource_version: str
    ) -> None:
        if ref.name == self._victim and not self.interfered:
            self.interfered += 1
            bump = {"metadata": {"annotations": {"rollout": "restarted"}}}
            self._objects_api.patch_namespaced_custom_object(
                *DEPLOYMENTS[:2], namespace, DEPLOYMENTS[2], ref.name, bump
            )
        super().set_replicas(namespace, ref, replicas, resource_version)


LLAMA_POOLS = [
    pool("on-demand", "on-demand", "llama-on-demand", price=4.0, min_replicas=1, max_replicas=4),
    pool("spot", "spot", "llama-spot", price=1.4, max_replicas=8),
    pool("reserved", "spot", "llama-reserved", price=1.0, max_replicas=8),
]


async def test_one_pass_writes_status_patches_scale_retries_a_conflict_and_skips_paused(
    api: Any, objects: Any, ns: str
) -> None:
    make_target(objects, ns, "llama-on-demand", replicas=1, ready=1)
    make_target(objects, ns, "llama-spot", replicas=1, ready=1)
    # A human holds this pool where it is.
    make_target(objects, ns, "llama-reserved", replicas=2, ready=2, paused=True)
    make_scaler(objects, ns, "llama", scaler_spec(LLAMA_POOLS))
    paused_version = target(objects, ns, "llama-reserved")["metadata"]["resourceVersion"]
    on_demand_version = target(objects, ns, "llama-on-demand")["metadata"]["resourceVersion"]

    clock = FakeClock()
    signals = FixedSignals(llama={"arrival_rps": 10.0, "ttft_p95_s": 0.4, "itl_p95_s": 0.02})
    adapter = ConcurrentWriter(api, objects, victim="llama-spot")
    controller = Controller(adapter, signals, clock, namespace=ns)
    (result,) = await controller.reconcile_all()

    # 10 req/s at 2 req/s per replica: 5 replicas. The paused pool keeps its 2, on-demand
    # its minimum of 1; the other 2 go to spot plus 1 over-provisioned.
    assert signals.asked == [{"llama": 4}]
    assert result.reconciled is not None and result.reconciled.decision.replicas == 5
    assert target(objects, ns, "llama-spot")["spec"]["replicas"] == 3
    assert adapter.interfered == 1
    assert target(objects, ns, "llama-spot")["metadata"]["annotations"] == {"rollout": "restarted"}
    paused = target(objects, ns, "llama-reserved")
    assert (
        paused["spec"]["replicas"] == 2 and paused["metadata"]["resourceVersion"] == paused_version
    )
    # Already at its number: not written at all.
    assert (
        target(objects, ns, "llama-on-demand")["metadata"]["resourceVersion"] == on_demand_version
    )

    status = scaler(objects, ns, "llama")["status"]
    assert status["desiredReplicas"] == 6 and status["readyReplicas"] == 4
    assert status["observedGeneration"] == 1
    by_pool = {p["name"]: p for p in status["pools"]}
    assert by_pool["spot"]["desiredReplicas"] == 3
    assert by_pool["spot"]["action"] == "Deployment/llama-spot 1 -> 3 after 1 conflict"
    assert by_pool["spot"]["pendingSince"] == "2027-01-15T08:00:00Z"
    assert by_pool["reserved"]["paused"] is True
    assert by_pool["on-demand"]["action"] == "Deployment/llama-on-demand at 1"
    decision = status["lastDecision"]
    assert (decision["replicas"], decision["decidedBy"]) == (5, "demand")
    # 2.5 req/s per ready replica within the SLO: capacity is at least that, so the
    # prior of 2 moves a fifth of the way up; the status keeps it for the next leader.
    assert decision["why"] == (
        "10.00 req/s at 2.10 req/s per replica (learned from 1 interval, prior 2.00)"
    )
    assert decision["capacityPerReplicaRps"] == 2.1
    assert status["capacity"] == {
        "learnedRps": 2.1,
        "priorRps": 2.0,
        "samples": 1,
        "updatedAt": "2027-01-15T08:00:00Z",
        "why": "within the SLO at 2.50 req/s per replica -> 2.10",
    }
    assert "spot: 3 on spot ($1.4/h)" in decision["capacity"]  # CapacityPlan.reasons
    assert "reserved: paused, left at 2" in decision["capacity"]
    assert status["observed"]["arrivalRps"] == 10.0 and status["observed"]["fresh"] is True
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["AbleToScale"]["status"] == "True"
    assert conditions["AbleToScale"]["reason"] == "SucceededRescale"
    assert conditions["ScalingActive"]["reason"] == "SignalsFresh"
    assert conditions["ScalingLimited"]["status"] == "False"

    # The controller-manager brings the spot replicas up; the next pass changes nothing.
    controller_manager(objects, ns, "llama-spot", replicas=3, ready=3)
    versions = {
        n: target(objects, ns, n)["metadata"]["resourceVersion"]
        for n in ("llama-spot", "llama-on-demand")
    }
    clock.advance(15)
    (again,) = await controller.reconcile_all()
    assert {a.outcome for a in again.actions} == {"unchanged", "paused"}
    assert {n: target(objects, ns, n)["metadata"]["resourceVersion"] for n in versions} == versions
    status = scaler(objects, ns, "llama")["status"]
    assert "pendingSince" not in {p["name"]: p for p in status["pools"]}["spot"]
    moved = {c["type"]: c["lastTransitionTime"] for c in status["conditions"]}
    assert moved["ScalingActive"] == conditions["ScalingActive"]["lastTransitionTime"]


async def test_a_paused_model_scaler_touches_no_target_and_says_so(
    api: Any, objects: Any, ns: str
) -> None:
    make_target(objects, ns, "qwen-spot", replicas=1, ready=1)
    make_target(objects, ns, "qwen-on-demand", replicas=1, ready=1)
    pools = [
        pool("on-demand", "on-demand", "qwen-on-demand", price=4.0, min_replicas=1),
        pool("spot", "spot", "qwen-spot", price=1.4),
    ]
    make_scaler(
        objects, ns, "qwen", scaler_spec(pools, model="qwen"), {"tidegate.dev/paused": "true"}
    )
    before = {
        n: target(objects, ns, n)["metadata"]["resourceVersion"]
        for n in ("qwen-spot", "qwen-on-demand")
    }
    signals = FixedSignals(qwen={"arrival_rps": 40.0})
    controller = Controller(KubeScalers(api), signals, FakeClock(), namespace=ns)
    results = await controller.reconcile_all()
    assert {r.key for r in results} >= {f"{ns}/qwen"}
    assert {n: target(objects, ns, n)["metadata"]["resourceVersion"] for n in before} == before
    status = scaler(objects, ns, "qwen")["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["AbleToScale"]["reason"] == "Paused"
    # Decided and shown, not applied: 20 wanted, 2 + 8 allowed in the first minute.
    assert (status["lastDecision"]["replicas"], status["lastDecision"]["decidedBy"]) == (
        10,
        "rate-limit",
    )
    assert conditions["ScalingLimited"]["reason"] == "ScaleRateLimited"
    assert all(p["paused"] for p in status["pools"])


def test_the_crd_validates_and_defaults_model_scalers(objects: Any, ns: str) -> None:
    spec = scaler_spec([pool("spot", "spot", "x", price=1.0)], onDemandFloor=0)
    spec.pop("behavior")
    spec.pop("spot")
    make_scaler(objects, ns, "defaults", spec)
    stored = scaler(objects, ns, "defaults")["spec"]
    assert stored["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 300,
        "maxReplicasPerMinute": 2,
    }
    assert stored["spot"] == {
        "overProvision": 0.3,
        "spareWindowSeconds": 120,
        "fallbackAfterSeconds": 120,
        "replacementSeconds": 600,
    }
    assert stored["capacityLearning"] == {"enabled": True, "band": 2}
    assert parse_spec(stored).policy_behavior().scale_down_window_s == 300

    bad_cases = [
        (
            lambda s: s["pools"][0].update(minReplicas=5, maxReplicas=2),
            "minReplicas must not exceed",
        ),
        (lambda s: s["pools"][0].update(capacityType="preemptible"), "capacityType"),
        (lambda s: s.update(onDemandFloor=1), "needs an on-demand pool"),
        (lambda s: s["slo"].update(ttftP95Seconds=0), "ttftP95Seconds"),
        (lambda s: s["slo"].update(objective=1), "objective"),
        (lambda s: s["pools"].append(copy.deepcopy(s["pools"][0])), "Duplicate value"),
        (lambda s: s["pools"][0]["scaleTargetRef"].update(apiVersion="v1"), "apiVersion"),
    ]
    for i, (mutate, message) in enumerate(bad_cases):
        bad = copy.deepcopy(spec)
        mutate(bad)
        with pytest.raises(kubernetes.client.exceptions.ApiException) as refused:
            make_scaler(objects, ns, f"bad-{i}", bad)
        assert refused.value.status == 422, refused.value.body
        assert message in refused.value.body, refused.value.body


async def test_the_command_runs_one_pass_and_holds_on_stale_signals(
    api: Any, objects: Any, ns: str, kube_apiserver: Path
) -> None:
    make_target(objects, ns, "mistral-spot", replicas=2, ready=2)
    pools = [pool("spot", "spot", "mistral-spot", price=1.0)]
    spot = {"overProvision": 0, "fallbackAfterSeconds": 120}
    spec = scaler_spec(pools, model="mistral", onDemandFloor=0, spot=spot)
    make_scaler(objects, ns, "mistral", spec)
    argv = ["--kubeconfig", str(kube_apiserver), "--namespace", ns, "--once"]
    argv += ["--scrape-gateways", "http://127.0.0.1:9"]  # nobody answers: signals are stale
    assert (
        await cli.serve(
            cli.load_settings(None, cli.overrides_from(cli.build_parser().parse_args(argv))),
            once=True,
        )
        == 0
    )
    status = scaler(objects, ns, "mistral")["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["ScalingActive"]["reason"] == "SignalsStale"
    assert status["lastDecision"]["decidedBy"] == "current"
    assert target(objects, ns, "mistral-spot")["spec"]["replicas"] == 2


def test_two_candidates_share_one_lease(api: Any, ns: str) -> None:
    clock = FakeClock()
    leases = KubeLeases(api, ns, resource=LEASES)
    a = LeaderElector(leases, "autoscaler", "a", clock, lease_duration_s=15, renew_deadline_s=10)
    b = LeaderElector(leases, "autoscaler", "b", clock, lease_duration_s=15, renew_deadline_s=10)
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    clock.advance(5)
    assert a.try_acquire_or_renew() is True  # renewed: b sees the record change
    assert b.try_acquire_or_renew() is False
    clock.advance(14)
    assert b.try_acquire_or_renew() is False  # 14 s since b saw a change
    clock.advance(2)  # a stopped renewing 16 s ago
    assert a.is_leader() is False
    assert b.try_acquire_or_renew() is True
    lease = leases.get_lease("autoscaler")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert a.try_acquire_or_renew() is False
    b.release()
    assert a.try_acquire_or_renew() is True  # released: no wait for expiry


def test_a_stale_lease_write_loses_the_race(api: Any, ns: str) -> None:
    """Two candidates read the same expired lease; the server lets only one write."""
    leases = KubeLeases(api, ns, resource=LEASES)
    clock = FakeClock()
    seed = LeaderElector(leases, "race", "old", clock)
    assert seed.try_acquire_or_renew()
    stale = leases.get_lease("race")
    assert stale is not None

    class Racing(KubeLeases):
        def get_lease(self, name: str) -> dict[str, Any] | None:
            return copy.deepcopy(stale)

    racing = Racing(api, ns, resource=LEASES)
    x = LeaderElector(racing, "race", "x", clock)
    y = LeaderElector(racing, "race", "y", clock)
    assert not x.try_acquire_or_renew() and not y.try_acquire_or_renew()  # "old" holds it
    clock.advance(60)  # "old" is gone; x and y both read its last record
    assert [x.try_acquire_or_renew(), y.try_acquire_or_renew()] == [True, False]
    final = leases.get_lease("race")
    assert final is not None and final["spec"]["holderIdentity"] == "x"


class WriteBetween(KubeLeases):
    """Runs ``between`` after the next read, before the reader's write lands."""

    between: Any = None

    def get_lease(self, name: str) -> dict[str, Any] | None:
        lease = super().get_lease(name)
        hook, self.between = self.between, None
        if hook is not None:
            hook()
        return lease


def test_electors_built_from_settings_share_the_configured_lease(
    api: Any, ns: str, kube_apiserver: Path
) -> None:
    """The Lease's group/version/resource comes from the settings; here the stand-in."""
    settings = cli.load_settings(
        None,
        {
            "namespace": ns,
            "signals": {"scrape": {"gateways": ["http://127.0.0.1:9"]}},
            "leader_election": {"lease_resource": {"group": LEASES.group}},
        },
    )
    assert settings.leader_election.lease_resource.version == "v1"
    assert cli.load_settings(
        None, {"namespace": ns, "signals": {"scrape": {"gateways": ["http://x"]}}}
    ).leader_election.lease_resource.group == ("coordination.k8s.io")  # the in-cluster default
    clock = FakeClock()
    leases = cli.lease_api(api, settings)
    racing = WriteBetween(api, ns, resource=LEASES)
    a = LeaderElector(racing, "from-settings", "a", clock)
    b = LeaderElector(leases, "from-settings", "b", clock)
    assert [a.try_acquire_or_renew(), b.try_acquire_or_renew()] == [True, False]
    for _ in range(3):  # a renews every 5 s: b never takes over
        clock.advance(5)
        assert [a.try_acquire_or_renew(), b.try_acquire_or_renew()] == [True, False]
    # a stalls for 16 s; as it finally reads to renew, b (whose wait ran out) takes over
    # before a's write lands: a's write carries a stale resourceVersion and loses (409).
    clock.advance(16)
    racing.between = lambda: b.try_acquire_or_renew()
    assert a.try_acquire_or_renew() is False and a.is_leader() is False
    assert b.is_leader() is True
    lease = leases.get_lease("from-settings")
    assert lease is not None and lease["apiVersion"] == f"{LEASES.group}/v1"
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
