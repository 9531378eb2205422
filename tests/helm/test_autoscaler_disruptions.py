"""RBAC for watching spot preemption: only when the controller's settings turn it on."""

from __future__ import annotations

from tests.helm.chart import of_kind, one, render

ON = ["autoscaler.enabled=true", "autoscaler.prometheusUrl=http://prometheus.monitoring:9090"]
NAME = "rel-tidegate-autoscaler"
PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]}


def test_off_by_default() -> None:
    docs = render(sets=ON)
    assert PODS not in one(docs, "Role", NAME)["rules"]
    assert not of_kind(docs, "ClusterRole")


def test_watching_disruptions_adds_pods_and_nodes_and_nothing_else() -> None:
    docs = render(sets=[*ON, "autoscaler.config.disruptions.enabled=true"])
    assert one(docs, "Role", NAME)["rules"][-1] == PODS
    (role,) = of_kind(docs, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}
    ]
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    assert (
        binding["roleRef"]["name"]
        == role["metadata"]["name"]
        == "llm-rel-tidegate-autoscaler-nodes"
    )
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": "llm"}]
    config = one(docs, "ConfigMap", NAME)["data"]["autoscaler.yaml"]
    assert "disruptions" in config


def test_without_node_watching_no_cluster_role() -> None:
    sets = [
        *ON,
        "autoscaler.config.disruptions.enabled=true",
        "autoscaler.config.disruptions.watch_nodes=false",
    ]
    docs = render(sets=sets)
    assert one(docs, "Role", NAME)["rules"][-1] == PODS
    assert not of_kind(docs, "ClusterRole")
