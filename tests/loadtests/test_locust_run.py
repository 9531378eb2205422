"""A short headless trace replay with Locust against a real ``tidegate up`` (simulated
workers, loopback only), judged both ways: a generous SLO passes, an impossible one makes
Locust exit non-zero. Bounded: 30 requests, a 30 s run-time cap, 120 s per Locust run."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidegate.localproc import LocalWorker, free_port, wait_healthy

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
REQUESTS = 30


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("up") / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "tidegate", "up", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", "--ttft-ms", "10", "--token-delay-ms", "1"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy([LocalWorker(base, up)], timeout_s=30, path="/readyz")
        yield base
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def locust(base: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-H", base,
        "--shape", "replay", "--speedup", "4", "--max-requests", str(REQUESTS),
        "--max-input-tokens", "2048", "--max-output-tokens", "32", "--stream-ratio", "0.8",
        "--drain-time", "10", "-t", "30s", "--only-summary",
        "--csv", str(out / "run"), "--html", str(out / "run.html"), *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)


def stats(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with (out / "run_stats.csv").open(newline="") as handle:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(handle)}


def test_a_generous_slo_passes_and_the_stream_timings_are_in_locusts_stats(gateway, tmp_path):
    run = locust(gateway, tmp_path, "--slo", "ttft_p95_ms=5000,itl_p95_ms=1000,error_rate=0.05")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "SLO verdict: PASS" in run.stdout
    rows = stats(tmp_path)
    streams = int(rows[("POST", "chat stream")]["Request Count"])
    plain = int(rows.get(("POST", "chat"), {}).get("Request Count", "0"))
    assert streams + plain == REQUESTS and streams > 0
    assert int(rows[("TTFT", "chat stream")]["Request Count"]) == streams
    assert int(rows[("ITL", "chat stream")]["Request Count"]) == streams
    assert float(rows[("TTFT", "chat stream")]["Median Response Time"]) >= 10  # --ttft-ms
    # Request sizes are completion tokens from usage: capped at 32, ignore_eos honoured.
    assert float(rows[("POST", "chat stream")]["Average Content Size"]) <= 32
    history = (tmp_path / "run_stats_history.csv").read_text()
    assert "TTFT,chat stream" in history and "ITL,chat stream" in history
    assert (tmp_path / "run_report.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "run.html").stat().st_size > 0


def test_an_impossible_slo_fails_the_run(gateway, tmp_path):
    run = locust(
        gateway, tmp_path, "--slo", "ttft_p50_ms=1,itl_p95_ms=1000", "--itl-events", "token"
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    verdict = run.stdout[run.stdout.index("SLO verdict: FAIL") :]
    ttft_line = next(line for line in verdict.splitlines() if line.startswith("TTFT p50"))
    itl_line = next(line for line in verdict.splitlines() if line.startswith("ITL p95"))
    assert ttft_line.endswith("FAIL") and itl_line.endswith("pass")
    rows = stats(tmp_path)
    # One ITL sample per gap between token events: many more than streams.
    assert int(rows[("ITL", "chat stream")]["Request Count"]) > int(
        rows[("TTFT", "chat stream")]["Request Count"]
    )


def test_a_bad_slo_stops_before_sending_anything(gateway, tmp_path):
    run = locust(gateway, tmp_path, "--slo", "ttft_p95=5")
    assert run.returncode == 2
    assert "unknown SLO key 'ttft_p95'" in run.stderr
