"""``tidegate autoscaler``: settings, flags, health, and the layering that keeps the
Kubernetes client and HTTP out of decision code."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.controller import cli
from autoscaler.controller.settings import ControllerSettings, SettingsError, load_settings
from autoscaler.signals.prometheus import PrometheusSource
from autoscaler.signals.scrape import ScrapeSource
from tests.controller.support import FakeClock
from tidegate.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
SCRAPE = {"scrape": {"gateways": ["http://10.0.0.5:8000"]}}


def settings_from(
    tmp_path: Path, raw: dict[str, Any], argv: Sequence[str] = ()
) -> ControllerSettings:
    config = tmp_path / "autoscaler.yaml"
    config.write_text(yaml.safe_dump(raw))
    args = cli.build_parser().parse_args(["--config", str(config), *argv])
    return load_settings(args.config, cli.overrides_from(args))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "signals: Field required"),
        ({"signals": {}}, "set exactly one of signals.prometheus and signals.scrape"),
        ({"signals": {**SCRAPE, "prometheus": {"url": "http://p:9090"}}}, "exactly one"),
        ({"signals": {"prometheus": {"url": "p:9090"}}}, "signals.prometheus.url"),
        ({"signals": {"scrape": {"gateways": []}}}, "signals.scrape.gateways"),
        ({"signals": SCRAPE, "namespace": None}, "leader_election.namespace is needed"),
        ({"signals": SCRAPE, "namespace": "llm", "interval": 5}, "interval"),
        (
            {"signals": SCRAPE, "namespace": "llm", "leader_election": {"renew_deadline_s": 20}},
            "retry_period_s < renew_deadline_s < lease_duration_s",
        ),
    ],
)
def test_bad_settings_stop_the_start_naming_the_field(
    tmp_path: Path, raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        settings_from(tmp_path, raw)


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    raw = {"namespace": "llm", "interval_s": 30, "signals": SCRAPE}
    argv = ["--interval-s", "5", "--prometheus-url", "http://prom:9090", "--kubeconfig", "/k"]
    settings = settings_from(tmp_path, raw, argv)
    assert settings.interval_s == 5
    assert settings.signals.scrape is None and settings.signals.prometheus is not None
    assert (settings.auth, settings.kubeconfig) == ("kubeconfig", Path("/k"))
    assert isinstance(cli.signal_source(settings), PrometheusSource)
    once = settings_from(tmp_path, raw, ["--once", "--scrape-gateways", "http://a:1,http://b:1"])
    assert once.leader_election.enabled is False
    assert once.signals.scrape is not None and once.signals.scrape.gateways == (
        "http://a:1",
        "http://b:1",
    )
    assert isinstance(cli.signal_source(once), ScrapeSource)


def test_the_command_is_listed_and_refuses_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert COMMANDS["autoscaler"][0] == "autoscaler.controller.cli"
    assert cli.main(["--namespace", "llm"]) == 2
    assert "signals: Field required" in capsys.readouterr().err


def test_a_missing_kubeconfig_is_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    argv = ["--kubeconfig", str(tmp_path / "none"), "--scrape-gateways", "http://a:1", "--once"]
    assert cli.main(argv) == 2
    assert any("no Kubernetes configuration" in r.getMessage() for r in caplog.records)


async def test_health_turns_red_when_the_loop_stalls() -> None:
    clock = FakeClock(100.0)
    health = cli.Health(stale_after_s=60, clock=clock)
    response = await health.handle(None)  # type: ignore[arg-type]
    assert response.status == 200 and response.text is not None and "standby" in response.text
    clock.advance(61)
    assert (await health.handle(None)).status == 503  # type: ignore[arg-type]
    health.tick()
    assert (await health.handle(None)).status == 200  # type: ignore[arg-type]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_adapter_imports_the_kubernetes_client() -> None:
    importers = {
        p.relative_to(ROOT).as_posix()
        for p in [
            *(ROOT / "autoscaler" / "controller").glob("*.py"),
            *(ROOT / "autoscaler" / "signals").glob("*.py"),
        ]
        if any(n == "kubernetes" or n.startswith("kubernetes.") for n in imports_of(p))
    }
    assert importers == {"autoscaler/controller/kube.py"}


@pytest.mark.parametrize(
    "module",
    [
        "controller/spec.py",
        "controller/reconcile.py",
        "controller/status.py",
        "controller/act.py",
        "controller/leader.py",
        "controller/api.py",
        "signals/histogram.py",
        "signals/exposition.py",
        "signals/window.py",
        "signals/promql.py",
    ],
)
def test_decision_and_parsing_code_imports_no_io_library(module: str) -> None:
    names = imports_of(ROOT / "autoscaler" / module)
    io = {"kubernetes", "aiohttp", "httpx", "requests", "time", "asyncio", "socket"}
    assert not {n.split(".")[0] for n in names} & io


def test_starting_the_command_loads_no_kubernetes_client_before_it_is_needed() -> None:
    code = "import sys, autoscaler.controller.cli; assert 'kubernetes' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
