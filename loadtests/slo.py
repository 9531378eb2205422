"""SLO targets and the pass/fail verdict of a load test.

Targets are keys with limits, from ``--slo 'ttft_p95_ms=500,itl_p95_ms=50,error_rate=0.01'``
or a YAML/JSON file of the same keys (the command line wins for a key given in both):

- ``{ttft,itl,e2e}_p<percentile>_ms``: that percentile must be at most the limit (ms);
- ``error_rate``: failed requests / all requests, at most the limit (a fraction);
- ``min_requests``: at least this many requests (default 1 once any target is set, so a
  run that sent nothing never passes).

An unknown key or a bad limit is an ``SloError`` at start-up. The verdict reads latency
histograms (value in ms -> count, as Locust keeps them), so it judges exactly the numbers
Locust reports, merged across worker processes in a distributed run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LATENCY_METRICS = ("ttft", "itl", "e2e")
_LATENCY_KEY = re.compile(r"^(ttft|itl|e2e)_p(\d{1,2}(?:\.\d+)?|100)_ms$")

Histogram = Mapping[float, int] | Mapping[int, int]
"""Latency value (ms) -> how many samples had it; Locust keeps int keys."""


class SloError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    limit: float
    metric: str
    """``ttft``, ``itl``, ``e2e``, ``error_rate`` or ``requests``."""
    percentile: float | None = None
    """In [0, 100] for latency targets."""

    @property
    def at_least(self) -> bool:
        return self.metric == "requests"

    @property
    def label(self) -> str:
        if self.percentile is not None:
            return f"{self.metric.upper()} p{self.percentile:g}"
        return {"error_rate": "error rate", "requests": "requests"}[self.metric]


def parse_target(key: str, value: Any) -> Target:
    key = key.strip()
    try:
        limit = float(value)
    except (TypeError, ValueError):
        raise SloError(f"SLO {key}: limit must be a number, got {value!r}") from None
    if not math.isfinite(limit) or limit < 0:
        raise SloError(f"SLO {key}: limit must be a finite number >= 0, got {value!r}")
    if match := _LATENCY_KEY.match(key):
        return Target(key, limit, match.group(1), float(match.group(2)))
    if key == "error_rate":
        if limit > 1:
            raise SloError(f"SLO error_rate is a fraction in [0, 1], got {value!r}")
        return Target(key, limit, "error_rate")
    if key == "min_requests":
        return Target(key, limit, "requests")
    raise SloError(
        f"unknown SLO key {key!r}: use ttft_pNN_ms, itl_pNN_ms, e2e_pNN_ms, error_rate "
        "or min_requests"
    )


def parse_slo_text(text: str) -> dict[str, Target]:
    """``key=limit[,key=limit...]`` (commas or spaces between pairs)."""
    targets: dict[str, Target] = {}
    for pair in re.split(r"[,\s]+", text.strip()):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            raise SloError(f"SLO target {pair!r} is not key=limit")
        target = parse_target(key, value)
        targets[target.key] = target
    return targets


def load_slo_file(path: Path | str) -> dict[str, Target]:
    """A YAML (or JSON) mapping of the same keys; an ``slo:`` top level is also accepted."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SloError(f"cannot read SLO file {path}: {exc}") from exc
    if isinstance(data, dict) and set(data) == {"slo"}:
        data = data["slo"]
    if not isinstance(data, dict):
        raise SloError(f"SLO file {path}: expected a mapping of key: limit")
    return {str(k): parse_target(str(k), v) for k, v in data.items()}


def build_targets(file: Path | str | None, text: str | None) -> tuple[Target, ...]:
    """File targets, overridden key by key by command-line ones, plus the implicit
    ``min_requests: 1`` when any target is set."""
    targets = load_slo_file(file) if file else {}
    targets.update(parse_slo_text(text) if text else {})
    if targets and "min_requests" not in targets:
        targets["min_requests"] = Target("min_requests", 1.0, "requests")
    return tuple(targets.values())


@dataclass(frozen=True, slots=True)
class Observations:
    latencies_ms: Mapping[str, Histogram]
    """``ttft``, ``itl``, ``e2e`` -> histogram of values in ms."""
    requests: int
    failures: int


@dataclass(frozen=True, slots=True)
class StatsRow:
    """What the verdict needs from one row of Locust's statistics."""

    kind: str
    """The row's type: ``POST`` for requests, ``TTFT``, ``ITL``."""
    histogram: Histogram
    requests: int
    """All requests logged in the row, failed ones included (as Locust counts them)."""
    failures: int


def collect(rows: Iterable[StatsRow], metric_kinds: Mapping[str, str]) -> Observations:
    """Merge the rows of each metric (``metric_kinds``: metric -> row type); requests and
    failures are those of the ``e2e`` rows (the TTFT and ITL rows are not requests)."""
    kinds = {kind: metric for metric, kind in metric_kinds.items()}
    histograms: dict[str, dict[float, int]] = {}
    requests = failures = 0
    for row in rows:
        metric = kinds.get(row.kind)
        if metric is None:
            continue
        merged = histograms.setdefault(metric, {})
        for value, count in row.histogram.items():
            merged[value] = merged.get(value, 0) + count
        if metric == "e2e":
            requests += row.requests
            failures += row.failures
    return Observations(histograms, requests, failures)


@dataclass(frozen=True, slots=True)
class Check:
    target: Target
    observed: float | None
    passed: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def percentile(histogram: Histogram, pct: float) -> float | None:
    """Nearest-rank percentile (``pct`` in [0, 100]) of a value -> count histogram."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(pct / 100.0 * total))
    seen = 0
    for value, count in sorted(histogram.items()):
        seen += count
        if seen >= rank:
            return value
    return max(histogram)


def observe(target: Target, obs: Observations) -> float | None:
    if target.metric == "requests":
        return float(obs.requests)
    if target.metric == "error_rate":
        return obs.failures / obs.requests if obs.requests else None
    assert target.percentile is not None
    return percentile(obs.latencies_ms.get(target.metric, {}), target.percentile)


def judge(targets: tuple[Target, ...], obs: Observations) -> Verdict:
    """Every target checked; a target with no data (no streams for a TTFT target, no
    requests for an error rate) fails: an SLO nobody measured is not met."""
    checks = []
    for target in targets:
        value = observe(target, obs)
        if value is None:
            passed = False
        elif target.at_least:
            passed = value >= target.limit
        else:
            passed = value <= target.limit
        checks.append(Check(target, value, passed))
    return Verdict(tuple(checks))


def _format(target: Target, value: float) -> str:
    if target.metric == "error_rate":
        return f"{value * 100:.2f}%"
    if target.metric == "requests":
        return f"{value:.0f}"
    return f"{value:g} ms"


def format_verdict(verdict: Verdict) -> str:
    """A plain-text table, one row per target, and the overall result."""
    rows = [("check", "target", "observed", "result")]
    for check in verdict.checks:
        target = check.target
        bound = (">= " if target.at_least else "<= ") + _format(target, target.limit)
        seen = "no data" if check.observed is None else _format(target, check.observed)
        rows.append((target.label, bound, seen, "pass" if check.passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = f"SLO verdict: {'PASS' if verdict.passed else 'FAIL'}"
    return "\n".join([head, *lines])
