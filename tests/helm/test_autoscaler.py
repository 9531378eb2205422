"""The chart's autoscaler objects: the ModelScaler CRD (crds/), and the controller's
Deployment, settings, ServiceAccount and RBAC behind ``autoscaler.enabled``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoscaler.controller.settings import ControllerSettings, load_settings
from tests.helm.chart import (
    CHART,
    KUBE_VERSIONS,
    Doc,
    helm,
    of_kind,
    one,
    refused,
    render,
    validated,
    value_args,
)

ON = ["autoscaler.enabled=true", "autoscaler.prometheusUrl=http://prometheus.monitoring:9090"]
NAME = "rel-tidegate-autoscaler"


def test_the_crd_ships_in_crds_and_only_with_include_crds() -> None:
    (crd_file,) = (CHART / "crds").glob("*.yaml")
    crd = yaml.safe_load(crd_file.read_text())
    assert crd["metadata"]["name"] == "modelscalers.tidegate.dev"
    assert crd["spec"]["group"] == "tidegate.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert not of_kind(render(), "CustomResourceDefinition")
    text = helm("template", "rel", str(CHART), "-n", "llm", "--include-crds").stdout
    assert [d["kind"] for d in yaml.safe_load_all(text) if d].count("CustomResourceDefinition") == 1


def test_the_autoscaler_is_off_by_default() -> None:
    docs = render()
    components = {d["metadata"]["labels"].get("app.kubernetes.io/component") for d in docs}
    assert "autoscaler" not in components


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_crd_and_the_controller_are_valid_kubernetes(version: str, tmp_path: Path) -> None:
    helm("lint", "--strict", str(CHART), *value_args(None, ON))
    manifest = tmp_path / "rendered.yaml"
    args = ["template", "rel", str(CHART), "-n", "llm", "--include-crds", *value_args(None, ON)]
    manifest.write_text(helm(*args).stdout)
    output = validated(manifest, version)
    assert "ERROR" not in output and "Couldn't find schema" not in output, output
    for kind in ("customresourcedefinition", "deployment", "role", "rolebinding"):
        assert f"passed for resource {kind}/" in output, output


def test_the_controller_runs_like_every_other_pod() -> None:
    docs = render(sets=ON)
    deployment = one(docs, "Deployment", NAME)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 2  # one leads, one stands by
    assert container["args"] == ["autoscaler", "--config", "/etc/tidegate/autoscaler.yaml"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    (identity,) = container["env"]
    assert identity["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert pod["automountServiceAccountToken"] is True


def test_the_settings_file_is_what_the_controller_accepts(tmp_path: Path) -> None:
    settings = load_settings_from(render(sets=ON), tmp_path)
    assert settings.namespace == "llm"
    assert settings.auth == "in-cluster"
    assert settings.signals.prometheus is not None
    assert settings.signals.prometheus.url == "http://prometheus.monitoring:9090"
    assert settings.leader_election.enabled and settings.lease_namespace == "llm"
    assert settings.leader_election.lease_name == NAME
    assert settings.health.port == 8080

    scrape = [
        "autoscaler.enabled=true",
        "autoscaler.config.signals.scrape.gateways={http://10.0.0.5:8000}",
        "autoscaler.config.interval_s=30",
    ]
    settings = load_settings_from(render(sets=scrape), tmp_path)
    assert settings.signals.scrape is not None and settings.interval_s == 30


def load_settings_from(docs: list[Doc], tmp_path: Path) -> ControllerSettings:
    config = tmp_path / "autoscaler.yaml"
    config.write_text(one(docs, "ConfigMap", NAME)["data"]["autoscaler.yaml"])
    return load_settings(config)


def test_rbac_grants_exactly_what_the_controller_calls() -> None:
    docs = render(sets=ON)
    role = one(docs, "Role", NAME)
    assert role["rules"] == [
        {
            "apiGroups": ["tidegate.dev"],
            "resources": ["modelscalers"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["tidegate.dev"],
            "resources": ["modelscalers/status"],
            "verbs": ["get", "patch", "update"],
        },
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        },
    ]
    binding = one(docs, "RoleBinding", NAME)
    account = one(docs, "ServiceAccount", NAME)
    assert binding["roleRef"]["name"] == NAME
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": "llm"}]
    pod = one(docs, "Deployment", NAME)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    # The gateway's own Role is unchanged next to it.
    assert one(docs, "Role", "rel-tidegate-gateway-discovery")["rules"][0]["resources"] == [
        "endpointslices"
    ]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ([*ON, "autoscaler.replicas=0"], "autoscaler.replicas"),
        ([*ON, "autoscaler.intervalSeconds=0"], "intervalSeconds"),
        (["autoscaler.enabled=true", "autoscaler.prometheusUrl=prometheus:9090"], "prometheusUrl"),
        ([*ON, "autoscaler.config.intervals=3"], "intervals"),
        ([*ON, "autoscaler.logLevel=loud"], "autoscaler.logLevel"),
        ([*ON, "autoscaler.replica=2"], "replica"),
    ],
)
def test_a_bad_autoscaler_value_fails_the_schema_naming_it(sets: list[str], message: str) -> None:
    error = refused(*sets)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_the_controller_needs_to_know_where_signals_come_from() -> None:
    assert "autoscaler.prometheusUrl or autoscaler.config.signals" in refused(
        "autoscaler.enabled=true"
    )
