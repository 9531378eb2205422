"""helm lint --strict, and every rendered object validated against the Kubernetes API's own
schemas (kubernetes-validate, offline) for the oldest and newest supported versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helm.chart import (
    CHART,
    KUBE_VERSIONS,
    VALUE_SETS,
    helm,
    render_text,
    validated,
    value_args,
    values_id,
)

# Prometheus Operator kinds have no schema in kubernetes-validate; test_observability.py
# checks them instead.
UNVALIDATED_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("values", VALUE_SETS, ids=values_id)
def test_helm_lint_strict(values: Path | None) -> None:
    result = helm("lint", "--strict", str(CHART), *value_args(values))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS, ids=values_id)
def test_rendered_objects_are_valid_kubernetes(values: Path | None, version: str, tmp_path) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(render_text(values))
    output = validated(manifest, version)
    assert "ERROR" not in output, output
    skipped = set(re.findall(r"Couldn't find schema for kind (\w+)", output))
    assert skipped <= UNVALIDATED_KINDS, output
    assert re.search(r"passed for resource deployment/", output), output


def test_the_chart_declares_the_supported_versions() -> None:
    chart = (CHART / "Chart.yaml").read_text()
    assert f'kubeVersion: ">={KUBE_VERSIONS[0]}-0"' in chart


def readme_values(tmp_path: Path) -> Path:
    readme = (CHART.parents[1] / "README.md").read_text()
    block = re.search(r"```yaml\n# values.yaml\n(.*?)```", readme, flags=re.S)
    assert block, "README's install section has no values example"
    values = tmp_path / "readme-values.yaml"
    values.write_text(block.group(1))
    return values


def test_the_readme_example_lints_and_renders_valid_objects(tmp_path) -> None:
    values = readme_values(tmp_path)
    helm("lint", "--strict", str(CHART), *value_args(values))
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(
        helm("template", "tidegate", str(CHART), "-n", "llm", *value_args(values)).stdout
    )
    validated(manifest, KUBE_VERSIONS[-1])
    text = manifest.read_text()
    for name in ("tidegate-gateway", "tidegate-llama-8b-on-demand", "tidegate-llama-8b-spot"):
        assert f"name: {name}\n" in text
