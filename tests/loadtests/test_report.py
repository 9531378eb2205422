"""The PNG report's data, read from a Locust stats history CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from loadtests.report import default_png, load_history, main, parse_history

COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "95%",
           "99%", "Total Request Count", "Total Failure Count",
           "Total Average Content Size"]  # fmt: skip


def rows() -> list[dict[str, str]]:
    def row(t, kind, name, p=("N/A",) * 3, count="0", failed="0", size="0", users="4"):
        # Locust's own Requests/s (a lagging average) is deliberately nonsense here.
        values = [str(t), users, kind, name, "99", "99", *p, count, failed, size]
        return dict(zip(COLUMNS, values, strict=True))

    return [
        row(100, "", "Aggregated", users="0"),
        row(100, "TTFT", "chat stream", p=("0", "0", "0")),  # no data yet: Locust writes 0
        row(100, "POST", "chat stream"),
        row(101, "TTFT", "chat stream", p=("20", "40", "50")),
        row(101, "ITL", "chat stream", p=("5", "9", "12")),
        row(101, "POST", "chat stream", count="10", size="100"),
        row(101, "POST", "chat", count="4", failed="1", size="50"),
        row(101, "", "Aggregated"),
        row(103, "TTFT", "chat stream", p=("25", "45", "N/A")),
        row(103, "ITL", "chat stream", p=("0", "9", "12")),
        row(103, "POST", "chat stream", count="20", size="100"),
        row(103, "POST", "chat", count="4", failed="1", size="50"),
    ]


def test_history_collects_percentiles_and_rates_from_running_totals():
    history = parse_history(rows())
    assert history.ttft.percentiles["50%"] == {1.0: 20.0, 3.0: 25.0}  # the leading 0 dropped
    assert history.ttft.percentiles["99%"] == {1.0: 50.0}  # N/A is a gap, not zero
    assert history.itl.percentiles["50%"] == {1.0: 5.0, 3.0: 0.0}  # a later 0 is data
    # Streams: 10 requests in [100, 101], 10 more over [101, 103]; plain: 4 then none.
    assert history.requests_per_s == {1.0: 10.0, 3.0: pytest.approx(5.0)}
    assert history.failures_per_s == {1.0: 0.0, 3.0: 0.0}
    # 10 x 100 tokens over 2 s on the stream row; nothing new on the other.
    assert history.tokens_per_s == {1.0: 1000.0, 3.0: pytest.approx(500.0)}
    assert history.users == {0.0: 0.0, 1.0: 4.0}


def write(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows())
    return path


def test_the_png_is_written(tmp_path, capsys):
    history = write(tmp_path / "run_stats_history.csv")
    assert main([str(history)]) == 0
    png = default_png(history)
    assert png == tmp_path / "run_report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in capsys.readouterr().out


def test_an_empty_history_still_plots(tmp_path):
    path = tmp_path / "empty_stats_history.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    out = tmp_path / "x.png"
    assert main([str(path), "-o", str(out)]) == 0 and out.exists()
    assert load_history(path).requests_per_s == {}
