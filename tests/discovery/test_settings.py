"""The ``discovery.kubernetes`` settings section, and exactly one source of workers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.settings import SettingsError, load_settings

K8S = {"namespace": "llm", "label_selector": "app.kubernetes.io/component=worker"}


def test_a_kubernetes_section_loads_from_yaml_with_defaults(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "discovery:\n"
        "  kubernetes: {namespace: llm, label_selector: 'app.kubernetes.io/component=worker'}\n"
    )
    discovery = load_settings(config).discovery
    assert discovery.workers == ()
    assert discovery.configured
    assert discovery.kubernetes is not None
    assert discovery.kubernetes.port_name == "http"
    assert discovery.kubernetes.auth == "auto"


def test_environment_variables_reach_the_nested_section(monkeypatch):
    monkeypatch.setenv("TIDEGATE_DISCOVERY__KUBERNETES__WATCH_TIMEOUT_S", "60")
    settings = load_settings(overrides={"discovery": {"kubernetes": K8S}})
    assert settings.discovery.kubernetes is not None
    assert settings.discovery.kubernetes.watch_timeout_s == 60


def test_no_source_is_valid_settings_but_not_configured():
    assert not load_settings().discovery.configured


@pytest.mark.parametrize(
    ("discovery", "message"),
    [
        ({"workers": ["http://a:1"], "kubernetes": K8S}, "not both"),
        ({"kubernetes": {"namespace": "llm"}}, "discovery.kubernetes.label_selector"),
        ({"kubernetes": {**K8S, "selector": "x"}}, "discovery.kubernetes.selector"),
        ({"kubernetes": {**K8S, "auth": "in-cluster", "kubeconfig": "/k"}}, "in-cluster"),
        ({"kubernetes": {**K8S, "scheme": "grpc"}}, "discovery.kubernetes.scheme"),
    ],
)
def test_bad_discovery_settings_fail_naming_the_field(discovery, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(overrides={"discovery": discovery})


def test_a_gateway_without_kubernetes_discovery_never_loads_the_kubernetes_client():
    code = (
        "import sys, gateway.cli, gateway.services, gateway.app\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))"
    )
    run = [sys.executable, "-c", code]
    result = subprocess.run(run, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
