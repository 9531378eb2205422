"""Several gateway replicas: the replica count in the gateway's settings, the Redis server
they share and the prefix-index exchange over it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.settings import GatewaySettings, load_settings
from tests.helm.chart import (
    CHART,
    EXAMPLES,
    KUBE_VERSIONS,
    Doc,
    helm,
    one,
    refused,
    render,
    validated,
    value_args,
)

TWO_MODELS = next(p for p in EXAMPLES if p.stem == "two-models")
GATEWAY = "rel-tidegate-gateway"
EXCHANGE = [
    "gateway.replicas=3",
    "gateway.config.scheduler.default_profile=affinity",
    "gateway.config.prefix_exchange.enabled=true",
    "gateway.config.prefix_exchange.interval_s=2",
    "gateway.config.prefix_exchange.max_batch=200",
    "gateway.config.admission.max_prefill_tokens_per_worker=32768",
]
REDIS_URL = "gateway.config.redis.url=redis://redis.llm:6379/0"
REDIS_SECRET = "gateway.redis.existingSecret=redis-auth"


def gateway_config(docs: list[Doc]) -> Doc:
    config: Doc = yaml.safe_load(one(docs, "ConfigMap", GATEWAY)["data"]["gateway.yaml"])
    return config


def loaded(docs: list[Doc], tmp_path: Path) -> GatewaySettings:
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(gateway_config(docs)))
    return load_settings(config_file)


def gateway_env(docs: list[Doc]) -> list[Doc]:
    pod = one(docs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    env: list[Doc] = pod["containers"][0].get("env", [])
    return env


AFFINITY = "gateway.config.scheduler.default_profile=affinity"


@pytest.mark.parametrize(("sets", "replicas"), [([], 2), (["gateway.replicas=3"], 3)])
def test_gateway_replicas_follows_the_deployments_replica_count(
    sets: list[str], replicas: int, tmp_path: Path
) -> None:
    docs = render(sets=[*sets, AFFINITY])
    assert one(docs, "Deployment", GATEWAY)["spec"]["replicas"] == replicas
    assert gateway_config(docs)["scheduler"] == {
        "default_profile": "affinity",
        "gateway_replicas": replicas,
    }
    assert loaded(docs, tmp_path).scheduler.gateway_replicas == replicas


def test_least_queue_installs_leave_the_estimate_off(tmp_path: Path) -> None:
    # The estimate costs pure load balancing some balance (docs/routing.md)
    docs = render(sets=["gateway.replicas=3"])
    assert "scheduler" not in gateway_config(docs) or not gateway_config(docs)["scheduler"]
    assert loaded(docs, tmp_path).scheduler.gateway_replicas == 1


def test_an_explicit_gateway_replicas_wins_and_other_scheduler_settings_stay() -> None:
    config = gateway_config(
        render(sets=["gateway.replicas=3", "gateway.config.scheduler.gateway_replicas=5"])
    )
    assert config["scheduler"] == {"gateway_replicas": 5}
    assert gateway_config(render(TWO_MODELS))["scheduler"] == {
        "default_profile": "affinity",
        "gateway_replicas": 3,
    }


def test_prefix_exchange_and_a_redis_url_render_into_the_gateway_config(tmp_path: Path) -> None:
    docs = render(sets=[*EXCHANGE, REDIS_URL])
    config = gateway_config(docs)
    assert config["redis"] == {"url": "redis://redis.llm:6379/0"}
    assert config["prefix_exchange"] == {"enabled": True, "interval_s": 2, "max_batch": 200}
    settings = loaded(docs, tmp_path)
    assert settings.redis is not None and settings.redis.url == "redis://redis.llm:6379/0"
    assert settings.prefix_exchange.enabled and settings.prefix_exchange.max_batch == 200
    assert settings.prefix_exchange.replica_id is None  # each replica draws its own
    assert settings.scheduler.gateway_replicas == 3
    assert settings.scheduler.default_profile == "affinity"
    assert settings.admission.max_prefill_tokens_per_worker == 32768
    assert not any(e["name"].startswith("TIDEGATE_REDIS") for e in gateway_env(docs))


def test_a_redis_url_from_a_secret_reaches_the_gateway_as_its_env_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(
        sets=[
            *EXCHANGE,
            REDIS_SECRET,
            "gateway.redis.existingSecretKey=redis-url",
            "gateway.config.redis.connect_timeout_s=5",
            "gateway.env[0].name=TIDEGATE_SERVER__LOG_LEVEL",
            "gateway.env[0].value=debug",
        ]
    )
    env = gateway_env(docs)
    assert env == [
        {"name": "TIDEGATE_SERVER__LOG_LEVEL", "value": "debug"},
        {
            "name": "TIDEGATE_REDIS__URL",
            "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "redis-url"}},
        },
    ]
    config = gateway_config(docs)
    assert config["redis"] == {"connect_timeout_s": 5}
    # What the pod sees: the Secret's value in the variable the settings read.
    monkeypatch.setenv("TIDEGATE_REDIS__URL", "redis://:password@redis.llm:6379/0")
    settings = loaded(docs, tmp_path)
    assert settings.redis is not None
    assert settings.redis.url == "redis://:password@redis.llm:6379/0"
    assert settings.redis.connect_timeout_s == 5
    assert settings.prefix_exchange.enabled


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["gateway.config.prefix_exchange.enabled=true"],
            "prefix_exchange.enabled needs a Redis server",
        ),
        ([REDIS_URL, REDIS_SECRET], "set the Redis URL once"),
        (["gateway.config.redis.connect_timeout_s=5"], "gateway.config.redis needs a url"),
    ],
)
def test_the_templates_refuse_an_exchange_without_one_redis_url(
    sets: list[str], message: str
) -> None:
    assert message in refused(*sets)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["gateway.config.scheduler.gateway_replicas=0"], "gateway_replicas"),
        (["gateway.config.redis.url=http://redis:6379"], "url"),
        (["gateway.config.prefix_exchange.max_batch=0"], "max_batch"),
        # One ConfigMap for every replica: a fixed id would make each skip the others.
        ([REDIS_URL, "gateway.config.prefix_exchange.replica_id=a"], "replica_id"),
        (["gateway.config.prefix_exchange.intervals=1"], "intervals"),
        (["gateway.config.admission.max_prefill_tokens_per_worker=0"], "max_prefill"),
        (["gateway.redis.existingSecretKey="], "existingSecretKey"),
    ],
)
def test_bad_replica_and_exchange_values_fail_the_schema(sets: list[str], message: str) -> None:
    error = refused(*sets)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("redis", [REDIS_URL, REDIS_SECRET], ids=["url", "secret"])
def test_the_rendered_objects_with_the_exchange_are_valid_kubernetes(
    redis: str, version: str, tmp_path: Path
) -> None:
    sets = [*EXCHANGE, redis]
    helm("lint", "--strict", str(CHART), *value_args(None, sets))
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(
        helm("template", "rel", str(CHART), "-n", "llm", *value_args(None, sets)).stdout
    )
    output = validated(manifest, version)
    assert "ERROR" not in output, output
    assert "passed for resource deployment/" in output, output
