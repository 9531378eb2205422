"""``tidegate tune`` end to end on the tiny model: bisection agrees with brute force,
misfits and verdicts show up, and the command's outputs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tune.support import PRICES, busy, profile_file, settings, write_trace
from tidegate.cli import main as tidegate
from workers.tune.cli import main
from workers.tune.tuner import TuneError, resolve_gpus, tune


def test_bisection_recommends_what_brute_force_does_with_fewer_replays(tmp_path: Path) -> None:
    requests = busy()
    brute = tune(settings(tmp_path, search="brute"), requests=requests)
    bisect = tune(settings(tmp_path), requests=requests)
    assert brute.recommended is not None and bisect.recommended is not None
    assert bisect.recommended == brute.recommended
    # $2/h like slow tp1 x2, but faster (so more goodput per dollar); fast x1 is $2.50/h
    assert brute.recommended.candidate.label == "slow tp2 seqs64 mbt2048 x1"
    assert len(brute.outcomes) == 8 * 4  # 12 groups, 4 refused for memory
    assert len(bisect.outcomes) < len(brute.outcomes) / 2


def test_every_group_gets_a_verdict(tmp_path: Path) -> None:
    report = tune(settings(tmp_path), requests=busy())
    kinds = {s.group.label: s.verdict.kind for s in report.groups}
    assert kinds == {
        # on the front of what bisection simulated (brute force finds fast x1 better)
        "slow tp1 seqs4 mbt2048": "front",
        "slow tp1 seqs64 mbt2048": "dominated",  # x2: same cost as the winner, slower
        "slow tp2 seqs4 mbt2048": "slo",  # x1 is too slow, x2 would cost more
        "slow tp2 seqs64 mbt2048": "recommended",
        "fast tp1 seqs4 mbt2048": "cost",  # one replica costs more than the winner
        "fast tp1 seqs64 mbt2048": "cost",
        "fast tp2 seqs4 mbt2048": "cost",
        "fast tp2 seqs64 mbt2048": "cost",
        "cramped tp1 seqs4 mbt2048": "memory",  # weights
        "cramped tp1 seqs64 mbt2048": "memory",
        "cramped tp2 seqs4 mbt2048": "memory",  # KV cache
        "cramped tp2 seqs64 mbt2048": "memory",
    }


@pytest.mark.parametrize(
    ("names", "expected"),
    [(("h100",), ["h100-80gb"]), (("a100", "h100-80gb"), ["a100-80gb", "a100-40gb", "h100-80gb"])],
)
def test_gpu_names_and_prefixes(names: tuple[str, ...], expected: list[str]) -> None:
    assert resolve_gpus(names, ["h100-80gb", "a100-80gb", "a100-40gb"]) == expected


def test_unknown_gpu_or_model(tmp_path: Path) -> None:
    with pytest.raises(TuneError, match="unknown GPU 'b200'"):
        tune(settings(tmp_path, gpus=("b200",)), requests=busy())
    with pytest.raises(TuneError, match="unknown model 'huge'"):
        tune(settings(tmp_path, model="huge"), requests=busy())


def cli_args(tmp_path: Path, *extra: str) -> list[str]:
    trace = write_trace(busy(), tmp_path / "trace.csv")
    args = ["--trace", str(trace), "--model", "tiny", "--gpus", "slow,fast", "--tp", "1"]
    args += ["--max-num-seqs", "64", "--max-replicas", "3"]
    args += ["--profile-file", str(profile_file(tmp_path))]
    for price in PRICES:
        args += ["--price", price]
    return args + list(extra)


def test_command_prints_the_recommendation_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "front.png"
    args = cli_args(tmp_path, "--slo-ttft-p95", "0.1", "--slo-itl-p95", "0.005")
    assert tidegate(["tune", *args, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Recommended: slow tp1 seqs64 mbt2048 x2 (2 GPUs): $2.00/h" in out
    assert "Cost/latency front" in out and "why it wins or loses" in out
    assert png.stat().st_size > 10_000


def test_command_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = cli_args(tmp_path, "--slo-ttft-p95", "0.1", "--slo-itl-p95", "0.005", "--json")
    assert main(args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = rows[-1]
    assert summary["type"] == "summary" and summary["recommended"] == "slow tp1 seqs64 mbt2048 x2"
    deployments = [r for r in rows if r["type"] == "deployment"]
    assert len(deployments) == summary["deployments_judged"]
    assert {r["verdict"] for r in deployments} >= {"recommended", "slo"}
    stopped = [r for r in deployments if "stopped_after" in r]
    assert stopped and all(not r["meets_slo"] for r in stopped)


def test_command_exits_1_when_nothing_meets_the_slo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli_args(tmp_path, "--slo-ttft-p95", "0.0001", "--slo-itl-p95", "0.005")) == 1
    assert "Recommended: none" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--slo-ttft-p95", "-1", "--slo-itl-p95", "1"], "--slo-ttft-p95: Input should be greater"),
        (["--slo-ttft-p95", "1", "--slo-itl-p95", "1", "--tp", "1,x"], "comma-separated"),
        (["--slo-ttft-p95", "1", "--slo-itl-p95", "1", "--gpus", "b200"], "unknown GPU 'b200'"),
        (["--slo-ttft-p95", "1", "--slo-itl-p95", "1", "--price", "slow=free"], "--price"),
    ],
)
def test_command_rejects_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(cli_args(tmp_path, *extra))
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
