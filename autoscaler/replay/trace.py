"""Request-level traces in the shared schema: ``arrival_s,input_tokens,output_tokens[,hash_ids]``.

``hash_ids`` (Mooncake) are ids of 512-token prompt blocks; two requests whose lists start
with the same ids share that prefix. See ../shared/data/traces/README.md for the traces and
their attribution.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

TRACE_BLOCK_TOKENS = 512
"""Tokens per ``hash_ids`` block in the shared schema."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    arrival_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()


class TraceError(ValueError):
    pass


def load_trace(path: str | Path, *, limit: int | None = None) -> list[TraceRequest]:
    """Read a trace; rows must be sorted by arrival and have positive lengths."""
    rows: list[TraceRequest] = []
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"arrival_s", "input_tokens", "output_tokens"} - set(reader.fieldnames or ())
        if missing:
            raise TraceError(f"{path}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                hashes = row.get("hash_ids") or ""
                request = TraceRequest(
                    arrival_s=float(row["arrival_s"]),
                    input_tokens=int(row["input_tokens"]),
                    output_tokens=int(row["output_tokens"]),
                    hash_ids=tuple(int(h) for h in hashes.split(";") if h),
                )
            except ValueError as exc:
                raise TraceError(f"{path}:{line}: {exc}") from None
            if rows and request.arrival_s < rows[-1].arrival_s:
                raise TraceError(f"{path}:{line}: arrivals are not sorted")
            if request.input_tokens < 1 or request.output_tokens < 1:
                raise TraceError(f"{path}:{line}: lengths must be positive")
            rows.append(request)
            if limit is not None and len(rows) >= limit:
                break
    return rows


def scale_arrivals(trace: Sequence[TraceRequest], load: float) -> list[TraceRequest]:
    """Compress time by ``load`` (2.0 = twice the request rate), keeping everything else."""
    if load <= 0:
        raise ValueError("load must be positive")
    return [
        TraceRequest(r.arrival_s / load, r.input_tokens, r.output_tokens, r.hash_ids) for r in trace
    ]


def window(trace: Iterable[TraceRequest], start_s: float, end_s: float) -> list[TraceRequest]:
    """Requests arriving in [start_s, end_s), re-based to start at zero."""
    return [
        TraceRequest(r.arrival_s - start_s, r.input_tokens, r.output_tokens, r.hash_ids)
        for r in trace
        if start_s <= r.arrival_s < end_s
    ]
