"""Render the Helm chart with the real helm binary and read what it produced.

helm comes from ``scripts/fetch-helm.sh`` (``make tools``), from ``$TIDEGATE_HELM``, or from
``PATH``. Where none can be had the chart tests skip with the reason, except under CI
(``CI`` set), where that is a failure.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tidegate"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
# Every rendering is checked with the default values and with each example.
VALUE_SETS: list[Path | None] = [None, *EXAMPLES]
# Oldest and newest Kubernetes versions the chart supports (Chart.yaml's kubeVersion).
KUBE_VERSIONS = ("1.29.0", "1.37.0")

Doc = dict[str, Any]


@functools.cache
def _helm_or_reason() -> tuple[str | None, str]:
    candidates = [os.environ.get("TIDEGATE_HELM"), str(ROOT / ".tools" / "bin" / "helm")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate, ""
    fetched = subprocess.run(
        ["bash", str(ROOT / "scripts" / "fetch-helm.sh")], capture_output=True, text=True
    )
    local = ROOT / ".tools" / "bin" / "helm"
    if fetched.returncode == 0 and os.access(local, os.X_OK):
        return str(local), ""
    on_path = shutil.which("helm")
    if on_path:
        return on_path, ""
    return None, f"helm could not be obtained (scripts/fetch-helm.sh: {fetched.stderr.strip()})"


def helm_binary() -> str:
    binary, reason = _helm_or_reason()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def refused(*sets: str, values: Path | None = None) -> str:
    """``helm template`` with these values must fail; its error output."""
    result = helm("template", "rel", str(CHART), *value_args(values, sets), check=False)
    assert result.returncode != 0, "expected the values to be refused"
    return result.stderr


def validated(manifest: Path, version: str) -> str:
    """Validate rendered manifests against Kubernetes ``version``'s schemas
    (kubernetes-validate, strict); the tool's output, which the caller may check further."""
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def value_args(values: Path | None = None, sets: Sequence[str] = ()) -> list[str]:
    args = ["-f", str(values)] if values is not None else []
    for item in sets:
        args += ["--set", item]
    return args


@functools.cache
def _render_cached(values: Path | None, sets: tuple[str, ...], namespace: str) -> str:
    args = ["template", "rel", str(CHART), "--namespace", namespace, *value_args(values, sets)]
    return helm(*args).stdout


def render_text(
    values: Path | None = None, sets: Sequence[str] = (), namespace: str = "llm"
) -> str:
    return _render_cached(values, tuple(sets), namespace)


def render(
    values: Path | None = None, sets: Sequence[str] = (), namespace: str = "llm"
) -> list[Doc]:
    return [d for d in yaml.safe_load_all(render_text(values, sets, namespace)) if d]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    (found,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return found


def pod_templates(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod spec) for every Deployment."""
    for doc in of_kind(docs, "Deployment"):
        yield doc, doc["spec"]["template"]["spec"]


def values_id(values: Path | None) -> str:
    return "defaults" if values is None else values.stem


def load_values(values: Path) -> Doc:
    loaded: Doc = yaml.safe_load(values.read_text())
    return loaded
