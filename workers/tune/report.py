"""What ``tidegate tune`` prints: a table for people, JSON lines for programs, and a PNG of
the cost/latency front. Rendering only; every decision was made in ``pareto``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.tune.outcome import Breached, Measured, Outcome, Slo
from workers.tune.pareto import GroupSummary, Verdict, judge
from workers.tune.space import Candidate, Misfit


@dataclass(frozen=True)
class TuneReport:
    """Everything one run found, with the context needed to read it."""

    model: str
    trace: str
    num_requests: int
    trace_span_s: float
    max_model_len: int
    slo: Slo
    price_list: str
    prices: Mapping[str, float]
    search: str
    space_size: int
    elapsed_s: float
    cpu_s: float
    replays: int  # deployments actually replayed; the rest were the same as one of them
    same_as: Mapping[Candidate, Candidate]
    outcomes: Sequence[Outcome]
    front: Sequence[Measured]
    recommended: Measured | None
    groups: Sequence[GroupSummary]
    misfits: Sequence[Misfit]


def _candidate_fields(c: Candidate) -> dict[str, Any]:
    g = c.group
    return {
        "deployment": c.label,
        "hardware": g.hardware,
        "tp": g.tp,
        "max_num_seqs": g.max_num_seqs,
        "max_num_batched_tokens": g.max_num_batched_tokens,
        "replicas": c.replicas,
        "gpus": c.gpus,
    }


def outcome_fields(outcome: Outcome) -> dict[str, Any]:
    fields = _candidate_fields(outcome.candidate)
    fields["usd_per_hour"] = round(outcome.usd_per_hour, 4)
    fields["meets_slo"] = outcome.meets_slo
    fields["requests"] = outcome.requests
    if isinstance(outcome, Measured):
        fields.update(
            ttft_p95_s=round(outcome.ttft_p95_s, 4),
            itl_p95_s=round(outcome.itl_p95_s, 5),
            requests_in_slo=outcome.requests_in_slo,
            output_tokens=outcome.output_tokens,
            goodput_tokens=outcome.goodput_tokens,
            goodput_tokens_per_usd=round(outcome.goodput_per_usd),
            makespan_s=round(outcome.makespan_s, 3),
        )
    else:
        fields.update(stopped_after=outcome.finished, broken=outcome.broken, misses=outcome.misses)
    return fields


def json_lines(report: TuneReport) -> list[str]:
    """One object per simulated deployment and per group vLLM would refuse, then a summary."""
    lines = []
    for outcome in report.outcomes:
        verdict = judge(outcome, report.front, report.slo)
        row = {"type": "deployment", **outcome_fields(outcome)}
        row.update(verdict=verdict.kind, reason=verdict.reason)
        source = report.same_as.get(outcome.candidate)
        if source is not None:
            row["same_as"] = source.label
        lines.append(json.dumps(row))
    for group in report.groups:
        if group.best is None:
            row = {"type": "engine_config", "engine_config": group.group.label}
            row.update(verdict=group.verdict.kind, reason=group.verdict.reason)
            lines.append(json.dumps(row))
    rec = report.recommended
    summary = {
        "type": "summary",
        "model": report.model,
        "trace": report.trace,
        "requests": report.num_requests,
        "max_model_len": report.max_model_len,
        "slo_ttft_p95_s": report.slo.ttft_p95_s,
        "slo_itl_p95_s": report.slo.itl_p95_s,
        "price_list": report.price_list,
        "usd_per_gpu_hour": dict(report.prices),
        "search": report.search,
        "deployments_judged": len(report.outcomes),
        "replays": report.replays,
        "space_size": report.space_size,
        "elapsed_s": round(report.elapsed_s, 2),
        "cpu_s": round(report.cpu_s, 2),
        "recommended": None if rec is None else rec.candidate.label,
        "front": [m.candidate.label for m in report.front],
    }
    lines.append(json.dumps(summary))
    return lines


def _front_row(m: Measured) -> list[str]:
    return [
        m.candidate.label,
        str(m.candidate.gpus),
        f"{m.usd_per_hour:,.2f}",
        f"{m.ttft_p95_s:.3f}",
        f"{m.itl_p95_s:.4f}",
        f"{100 * m.requests_in_slo / max(m.requests, 1):.1f}%",
        f"{m.goodput_per_usd:,.0f}",
    ]


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int]
) -> list[str]:
    """Columns padded to their widest cell; those in ``right`` (numbers) align right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  " + "  ".join(padded).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _gpus(count: int) -> str:
    return "1 GPU" if count == 1 else f"{count} GPUs"


def _verdict_text(verdict: Verdict) -> str:
    return f"{verdict.kind}: {verdict.reason}" if verdict.reason else verdict.kind


def render_text(report: TuneReport) -> str:
    slo = report.slo
    prices = ", ".join(f"{hw} {usd:g}" for hw, usd in report.prices.items())
    out = [
        f"Tuning {report.model} for {report.trace}: {report.num_requests:,} requests over "
        f"{_duration(report.trace_span_s)}, max_model_len {report.max_model_len:,}",
        f"SLO: p95 TTFT <= {slo.ttft_p95_s:g} s, p95 ITL <= {slo.itl_p95_s:g} s. "
        f"USD per GPU-hour ({report.price_list}): {prices}",
        f"Search: {report.search}, {len(report.outcomes):,} of {report.space_size:,} "
        f"deployments judged with {report.replays:,} replays in {report.elapsed_s:.1f} s "
        f"({report.cpu_s:.1f} s CPU)",
        "",
    ]
    rec = report.recommended
    if rec is None:
        out.append("Recommended: none. No deployment tried meets the SLO; see why below.")
    else:
        out.append(
            f"Recommended: {rec.candidate.label} ({_gpus(rec.candidate.gpus)}): "
            f"${rec.usd_per_hour:,.2f}/h, TTFT p95 {rec.ttft_p95_s:.3f} s, "
            f"ITL p95 {rec.itl_p95_s:.4f} s, "
            f"{100 * rec.requests_in_slo / max(rec.requests, 1):.1f}% of requests in SLO, "
            f"{rec.goodput_per_usd:,.0f} goodput tokens per $"
        )
    if report.front:
        out += ["", "Cost/latency front (meet the SLO; nothing else is as cheap and as fast):"]
        header = ["deployment", "GPUs", "$/h", "TTFT p95 s", "ITL p95 s", "in SLO", "goodput tok/$"]
        out += _table(header, [_front_row(m) for m in report.front], frozenset(range(1, 7)))
    out += ["", "Each engine configuration's best deployment, and why it wins or loses:"]
    rows = []
    for label, summary in _collapse(report.groups):
        best = summary.best
        deployment = "-" if best is None else f"x{best.candidate.replicas}"
        cost = "-" if best is None else f"{best.usd_per_hour:,.2f}"
        rows.append([label, deployment, cost, _verdict_text(summary.verdict)])
    out += _table(["engine configuration", "replicas", "$/h", "verdict"], rows, frozenset({1, 2}))
    return "\n".join(out) + "\n"


def _collapse(groups: Sequence[GroupSummary]) -> list[tuple[str, GroupSummary]]:
    """Consecutive groups of one GPU and ``tp`` with the same verdict on the same replica
    count (all refused for memory, say) as one row labelled ``GPU tpN (K engine configs)``."""

    def key(s: GroupSummary) -> tuple[object, ...]:
        best = None if s.best is None else (s.best.candidate.replicas, s.best.usd_per_hour)
        return (s.group.hardware, s.group.tp, s.verdict, best)

    runs: list[list[GroupSummary]] = []
    for summary in groups:
        if runs and key(runs[-1][-1]) == key(summary):
            runs[-1].append(summary)
        else:
            runs.append([summary])
    return [
        (
            run[0].group.label
            if len(run) == 1
            else f"{run[0].group.hardware} tp{run[0].group.tp} ({len(run)} engine configs)",
            run[0],
        )
        for run in runs
    ]


def plot_front(report: TuneReport, path: str | Path) -> None:
    """Cost against p95 TTFT and p95 ITL for every deployment judged on a full replay,
    coloured by GPU, the front circled and the recommendation starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [o for o in report.outcomes if isinstance(o, Measured)]
    stopped = sum(1 for o in report.outcomes if isinstance(o, Breached))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    panels = [
        ("ttft_p95_s", "p95 TTFT (s)", report.slo.ttft_p95_s),
        ("itl_p95_s", "p95 ITL (s)", report.slo.itl_p95_s),
    ]
    for ax, (attr, label, target) in zip(axes, panels, strict=True):
        for hw in sorted({o.candidate.group.hardware for o in measured}):
            points = [o for o in measured if o.candidate.group.hardware == hw]
            ax.scatter(
                [o.usd_per_hour for o in points], [getattr(o, attr) for o in points], s=18, label=hw
            )
        ax.scatter(
            [m.usd_per_hour for m in report.front],
            [getattr(m, attr) for m in report.front],
            s=90,
            facecolors="none",
            edgecolors="black",
            label="front",
        )
        if report.recommended is not None:
            rec = report.recommended
            point = (rec.usd_per_hour, getattr(rec, attr))
            ax.scatter([point[0]], [point[1]], marker="*", s=260, c="red", zorder=5)
            ax.annotate(
                f"recommended: {rec.candidate.label}",
                point,
                textcoords="offset points",
                xytext=(10, -14),
                fontsize=8,
            )
        ax.axhline(target, color="red", ls="--", lw=1, label="SLO")
        ax.set_xlabel("fleet cost (USD per hour)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper right")
    fig.suptitle(
        f"{report.model}, {report.num_requests:,} requests: {len(measured)} deployments "
        f"replayed to the end, {stopped} stopped early (SLO lost, not shown)"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
