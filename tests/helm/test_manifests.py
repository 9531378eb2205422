"""What the rendered manifests must hold, for the defaults and every example."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.settings import load_settings
from tests.helm.chart import (
    EXAMPLES,
    VALUE_SETS,
    Doc,
    load_values,
    of_kind,
    one,
    pod_templates,
    render,
    values_id,
)
from workers.vllm.cli import parse_settings

SPOT_ON_DEMAND = next(p for p in EXAMPLES if p.stem == "spot-on-demand")
TWO_MODELS = next(p for p in EXAMPLES if p.stem == "two-models")


def containers(pod: Doc) -> list[Doc]:
    return [*pod.get("initContainers", []), *pod["containers"]]


@pytest.mark.parametrize("values", VALUE_SETS, ids=values_id)
def test_every_container_has_resources_probes_and_runs_non_root(values: Path | None) -> None:
    docs = render(values)
    for workload, pod in pod_templates(docs):
        where = workload["metadata"]["name"]
        pod_security = pod["securityContext"]
        assert pod_security["runAsNonRoot"] is True, where
        assert pod_security["runAsUser"] != 0, where
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", where
        for container in containers(pod):
            resources = container["resources"]
            assert resources["requests"].get("cpu") and resources["requests"].get("memory"), where
            assert resources["limits"].get("memory"), where
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["port"] == "http", (where, probe)
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["runAsNonRoot"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert "privileged" not in security, where


def test_the_gateway_is_highly_available_and_drains_before_it_stops() -> None:
    docs = render()
    gateway = one(docs, "Deployment", "rel-tidegate-gateway")
    pod = gateway["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert gateway["spec"]["replicas"] == 2
    assert gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    # uvicorn finishes in-flight streams for up to 30 s after SIGTERM.
    assert pod["terminationGracePeriodSeconds"] > sleep + 30
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pdb = one(docs, "PodDisruptionBudget", "rel-tidegate-gateway")
    assert pdb["spec"]["selector"]["matchLabels"] == gateway["spec"]["selector"]["matchLabels"]
    assert container["args"] == ["gateway", "--config", "/etc/tidegate/gateway.yaml"]


def test_hard_anti_affinity_is_required_scheduling() -> None:
    pod = one(render(TWO_MODELS), "Deployment", "rel-tidegate-gateway")["spec"]["template"]["spec"]
    terms = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


def rules_of(docs: list[Doc]) -> list[Doc]:
    (role,) = of_kind(docs, "Role")
    rules: list[Doc] = role["rules"]
    return rules


@pytest.mark.parametrize("values", VALUE_SETS, ids=values_id)
def test_rbac_grants_exactly_what_discovery_needs(values: Path | None) -> None:
    docs = render(values)
    assert rules_of(docs) == [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["list", "watch"],
        }
    ]
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    (binding,) = of_kind(docs, "RoleBinding")
    (account,) = of_kind(docs, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": of_kind(docs, "Role")[0]["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "llm"}
    ]
    for workload, pod in pod_templates(docs):
        is_gateway = workload["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
        assert pod["automountServiceAccountToken"] is is_gateway
        if is_gateway:
            assert pod["serviceAccountName"] == account["metadata"]["name"]


def gateway_config(docs: list[Doc]) -> Doc:
    config: Doc = yaml.safe_load(
        one(docs, "ConfigMap", "rel-tidegate-gateway")["data"]["gateway.yaml"]
    )
    return config


@pytest.mark.parametrize("values", VALUE_SETS, ids=values_id)
def test_the_gateway_config_loads_and_its_selector_finds_every_worker_service(
    values: Path | None, tmp_path: Path
) -> None:
    docs = render(values)
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(gateway_config(docs)))
    settings = load_settings(config_file)
    kube = settings.discovery.kubernetes
    assert kube is not None and kube.namespace == "llm" and kube.auth == "in-cluster"
    assert settings.discovery.workers == ()
    wanted = dict(pair.split("=") for pair in kube.label_selector.split(","))

    services = [s for s in of_kind(docs, "Service") if s["spec"].get("clusterIP") == "None"]
    deployments = [
        d for d, _ in pod_templates(docs) if d["metadata"]["name"] != "rel-tidegate-gateway"
    ]
    # EndpointSlices carry their Service's labels: each worker Service must match ...
    for service in services:
        assert wanted.items() <= service["metadata"]["labels"].items()
        assert service["spec"]["publishNotReadyAddresses"] is False
        assert [p["name"] for p in service["spec"]["ports"]] == [kube.port_name]
    # ... and no other Service may.
    for service in of_kind(docs, "Service"):
        if service not in services:
            assert not wanted.items() <= service["metadata"]["labels"].items()
    # Every worker pod is behind its model's Service, on the port discovery uses.
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [s for s in services if s["spec"]["selector"].items() <= labels.items()]
        assert len(matching) == 1, deployment["metadata"]["name"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert [p["name"] for p in container["ports"]] == ["http"]
    models = {m["name"] for m in (load_values(values).get("models", []) if values else [])}
    assert {s["metadata"]["labels"]["tidegate.dev/model"] for s in services} == models


def test_the_gateway_config_merges_user_settings_over_the_charts() -> None:
    config = gateway_config(render(TWO_MODELS))
    assert config["scheduler"] == {"default_profile": "affinity", "gateway_replicas": 3}
    assert config["server"]["host"] == "0.0.0.0"
    assert config["models"] == ["meta-llama/Llama-3.1-8B-Instruct", "qwen-2.5-32b"]


def worker(docs: list[Doc], name: str) -> Doc:
    return one(docs, "Deployment", name)


def test_each_pool_is_a_deployment_placed_as_its_values_ask() -> None:
    values = load_values(SPOT_ON_DEMAND)
    docs = render(SPOT_ON_DEMAND)
    (model,) = values["models"]
    for pool in model["pools"]:
        deployment = worker(docs, f"rel-tidegate-{model['name']}-{pool['name']}")
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["replicas"] == pool["replicas"]
        assert pod["nodeSelector"] == pool["nodeSelector"]
        assert pod["tolerations"] == pool["tolerations"]
        assert pod.get("topologySpreadConstraints") == pool.get("topologySpreadConstraints")
        assert labels["tidegate.dev/capacity-type"] == pool["capacityType"]
        assert labels["tidegate.dev/pool"] == pool["name"]


def test_the_spot_pool_carries_the_tolerations_its_values_ask_for() -> None:
    spot = worker(render(TWO_MODELS), "rel-tidegate-llama-8b-spot")["spec"]["template"]["spec"]
    assert spot["tolerations"] == [
        {
            "key": "cloud.google.com/gke-spot",
            "operator": "Equal",
            "value": "true",
            "effect": "NoSchedule",
        }
    ]
    on_demand = worker(render(TWO_MODELS), "rel-tidegate-llama-8b-on-demand")["spec"]["template"][
        "spec"
    ]
    assert "tolerations" not in on_demand


def test_workers_get_gpus_shared_memory_and_a_model_cache() -> None:
    docs = render(TWO_MODELS)
    pod = worker(docs, "rel-tidegate-qwen-32b-on-demand")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 2
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "model-cache"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm"
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_HOME"]["value"] == "/models/huggingface"
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "rel-tidegate-huggingface",
        "key": "token",
    }
    assert one(docs, "Secret", "rel-tidegate-huggingface")["stringData"] == {
        "token": "hf_exampletoken"
    }
    assert pod["priorityClassName"] == "system-cluster-critical"


@pytest.mark.parametrize("values", EXAMPLES, ids=values_id)
def test_worker_arguments_are_what_tidegate_worker_accepts(values: Path) -> None:
    for workload, pod in pod_templates(render(values)):
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] != "worker":
            continue
        (container,) = pod["containers"]
        assert container["args"][0] == "worker"
        settings, print_only = parse_settings(container["args"][1:])
        assert not print_only
        assert (
            settings.host == "0.0.0.0" and settings.port == container["ports"][0]["containerPort"]
        )
        assert settings.tensor_parallel_size == container["resources"]["limits"]["nvidia.com/gpu"]
        assert settings.cache_dir is not None and str(settings.cache_dir).startswith("/models")


@pytest.mark.parametrize("values", EXAMPLES, ids=values_id)
def test_worker_probes_suit_slow_loads_and_termination_covers_the_drain(values: Path) -> None:
    for workload, pod in pod_templates(render(values)):
        if workload["metadata"]["labels"]["app.kubernetes.io/component"] != "worker":
            continue
        (container,) = pod["containers"]
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 20 * 60  # 20 min to load
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        # Liveness must not fail while draining (/health is 503 then): vLLM's own health.
        assert container["livenessProbe"]["httpGet"]["path"] == "/tidegate/live"
        settings, _ = parse_settings(container["args"][1:])
        sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        budget = sleep + settings.drain_grace_s + settings.stop_timeout_s
        assert pod["terminationGracePeriodSeconds"] >= budget, workload["metadata"]["name"]


def test_a_model_may_override_worker_defaults() -> None:
    docs = render(TWO_MODELS)
    qwen = worker(docs, "rel-tidegate-qwen-32b-on-demand")["spec"]["template"]["spec"]
    llama = worker(docs, "rel-tidegate-llama-8b-spot")["spec"]["template"]["spec"]
    qwen_settings, _ = parse_settings(qwen["containers"][0]["args"][1:])
    llama_settings, _ = parse_settings(llama["containers"][0]["args"][1:])
    assert qwen_settings.drain_grace_s == 180 and llama_settings.drain_grace_s == 90
    assert qwen_settings.extra_args == ("--dtype", "bfloat16")
    assert qwen_settings.max_model_len == 16384 and llama_settings.max_model_len is None
    assert qwen["terminationGracePeriodSeconds"] == 5 + 180 + 20 + 10


def test_worker_pdbs_cover_each_models_pools() -> None:
    docs = render(TWO_MODELS)
    pdb = one(docs, "PodDisruptionBudget", "rel-tidegate-llama-8b")
    assert pdb["spec"]["maxUnavailable"] == 1
    for name in ("rel-tidegate-llama-8b-spot", "rel-tidegate-llama-8b-on-demand"):
        labels = worker(docs, name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_gateway_secrets_go_through_a_secret_and_roll_the_pods() -> None:
    docs = render(TWO_MODELS)
    secret = one(docs, "Secret", "rel-tidegate-gateway")
    assert secret["stringData"] == {"TIDEGATE_SEED": "7"}
    pod = one(docs, "Deployment", "rel-tidegate-gateway")["spec"]["template"]
    assert pod["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "rel-tidegate-gateway"}}
    ]
    assert "checksum/secret" in pod["metadata"]["annotations"]
    assert "checksum/config" in pod["metadata"]["annotations"]
    assert not of_kind(render(), "Secret")


def test_the_ingress_routes_to_the_gateway_service() -> None:
    docs = render(TWO_MODELS)
    (ingress,) = of_kind(docs, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "rel-tidegate-gateway", "port": {"name": "http"}}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert not of_kind(render(), "Ingress")


def test_a_chart_upgrade_alone_does_not_restart_pods() -> None:
    for workload in of_kind(render(SPOT_ON_DEMAND), "Deployment"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert "helm.sh/chart" not in labels and "app.kubernetes.io/version" not in labels


def test_engine_priority_and_priority_headroom_pass_through_to_the_gateway(
    tmp_path: Path,
) -> None:
    docs = render(
        sets=[
            "gateway.config.upstream.engine_priority=true",
            "gateway.config.admission.max_running_per_worker=224",
        ]
    )
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(gateway_config(docs)))
    settings = load_settings(config_file)
    assert settings.upstream.engine_priority is True
    assert settings.admission.max_running_per_worker == 224
