"""Bad values fail at install with a message naming them; NOTES.txt tells how to start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.helm.chart import CHART, EXAMPLES, helm, refused, value_args

SPOT_ON_DEMAND = next(p for p in EXAMPLES if p.stem == "spot-on-demand")
MODEL = ["models[0].name=llama-8b", "models[0].model=m"]
POOL = [
    "models[0].pools[0].name=spot",
    "models[0].pools[0].capacityType=spot",
    "models[0].pools[0].replicas=1",
]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["gateway.replicas=0"], "gateway.replicas"),
        (["gateway.replicass=2"], "replicass"),  # a typo is not silently ignored
        (["gateway.antiAffinity=sometimes"], "gateway.antiAffinity"),
        (["gateway.service.type=Magic"], "gateway.service.type"),
        (["gateway.resources.requests=null"], "gateway.resources"),
        ([*MODEL, "models[0].pools[0].name=spot", "models[0].pools[0].replicas=1"], "capacityType"),
        ([*MODEL, *POOL, "models[0].pools[0].capacityType=preemptible"], "capacityType"),
        ([*MODEL, *POOL, "models[0].pools[0].replicas=-1"], "replicas"),
        (["models[0].name=Llama_8B", "models[0].model=m", *POOL], "models.0.name"),
        ([*MODEL, *POOL, "models[0].engine.gpuMemoryUtilization=1.5"], "gpuMemoryUtilization"),
        ([*MODEL, *POOL, "models[0].modelCache.type=nfs"], "modelCache.type"),
        ([*MODEL, *POOL, "models[0].huggingfaceToken.value=x"], "huggingfaceToken"),
        (["metrics.prometheusRule.ttft.thresholdSeconds=3"], "thresholdSeconds"),
        (["metrics.prometheusRule.availability.objective=1"], "objective"),
        (["gateway.config.discovery.workers={http://x:1}"], "workers"),
    ],
)
def test_a_bad_value_fails_the_schema_naming_it(sets: list[str], message: str) -> None:
    error = refused(*sets)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_the_templates_refuse_a_grace_period_shorter_than_the_drain() -> None:
    error = refused("workers.terminationGracePeriodSeconds=30", values=SPOT_ON_DEMAND)
    assert "shorter than preStop sleep + drain grace + stop timeout" in error
    error = refused("gateway.terminationGracePeriodSeconds=20")
    assert "must exceed gateway.preStopSleepSeconds" in error


def test_a_claim_name_is_required_for_a_persistent_model_cache() -> None:
    error = refused("workers.modelCache.type=persistentVolumeClaim", values=SPOT_ON_DEMAND)
    assert "modelCache.claimName is required" in error


def notes(tmp_path: Path, values: Path | None) -> str:
    """NOTES.txt as `helm install` prints it (rendered through a copy of the chart, since
    `helm template` leaves NOTES out and a client-side install wants a cluster)."""
    chart = tmp_path / "tidegate"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "NOTES.txt")
    (chart / "templates" / "notes-preview.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data:\n  notes: |\n    {{- tpl (.Files.Get "NOTES.txt") . | nindent 4 }}\n'
    )
    args = [
        "template",
        "rel",
        str(chart),
        "-n",
        "llm",
        "--show-only",
        "templates/notes-preview.yaml",
    ]
    text: str = yaml.safe_load(helm(*args, *value_args(values)).stdout)["data"]["notes"]
    return text


def test_notes_tell_how_to_reach_the_api_and_send_a_first_request(tmp_path: Path) -> None:
    text = notes(tmp_path, SPOT_ON_DEMAND)
    assert "kubectl -n llm port-forward svc/rel-tidegate-gateway 8000:80" in text
    assert '"model": "llama-3.1-8b"' in text
    assert "/chat/completions" in text
    assert "No models are configured" in notes(tmp_path / "defaults", None)
