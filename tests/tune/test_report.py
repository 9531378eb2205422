"""The table and the JSON lines of one small tuning run (the plot: test_tuner)."""

from __future__ import annotations

import json

import pytest

from tests.tune.support import busy, settings
from workers.tune.report import TuneReport, json_lines, render_text
from workers.tune.tuner import tune


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> TuneReport:
    return tune(settings(tmp_path_factory.mktemp("tune")), requests=busy())


def test_table_collapses_groups_refused_for_the_same_reason(report: TuneReport) -> None:
    text = render_text(report)
    assert "Recommended: slow tp2 seqs64 mbt2048 x1 (2 GPUs): $2.00/h" in text
    assert "cramped tp1 (2 engine configs)" in text and "cramped tp2 (2 engine configs)" in text
    assert "fast tp1 (2 engine configs)" in text  # both "not simulated", same bound
    assert "slow tp1 seqs64 mbt2048" in text  # simulated groups keep a row each
    assert "Search: bisect, 8 of 48 deployments judged with 8 replays" in text


def test_json_lines_name_every_deployment_and_unsimulated_group(report: TuneReport) -> None:
    rows = [json.loads(line) for line in json_lines(report)]
    by_type: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_type.setdefault(str(row["type"]), []).append(row)
    assert len(by_type["deployment"]) == len(report.outcomes)
    assert {r["verdict"] for r in by_type["engine_config"]} == {"memory", "cost"}
    assert len(by_type["engine_config"]) == 8 and by_type["summary"][0]["replays"] == 8
    recommended = [r for r in by_type["deployment"] if r["verdict"] == "recommended"]
    assert len(recommended) == 1 and recommended[0]["usd_per_hour"] == 2.0
