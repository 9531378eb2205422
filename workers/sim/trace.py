"""Request-level traces (``arrival_s,input_tokens,output_tokens[,hash_ids]``) as replay
arrivals; the schema is the one of the shared traces' README."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from workers.sim.replay import ReplayRequest


def read_trace(
    path: str | Path, *, limit: int | None = None, speedup: float = 1.0
) -> list[ReplayRequest]:
    """Arrivals of a trace CSV, optionally only the first ``limit`` and with time
    compressed by ``speedup``. ``hash_ids`` (when present) become ``trace_block_ids``."""
    if speedup <= 0:
        raise ValueError("speedup must be positive")
    requests: list[ReplayRequest] = []
    for index, row in enumerate(_rows(path)):
        if limit is not None and index >= limit:
            break
        raw_ids = row.get("hash_ids") or ""
        ids = tuple(int(x) for x in raw_ids.split(";")) if raw_ids else None
        requests.append(
            ReplayRequest(
                request_id=f"trace-{index}",
                arrival_s=float(row["arrival_s"]) / speedup,
                prompt_tokens=int(row["input_tokens"]),
                output_tokens=int(row["output_tokens"]),
                trace_block_ids=ids,
            )
        )
    return requests


def _rows(path: str | Path) -> Iterator[dict[str, str]]:
    with open(path, newline="") as handle:
        yield from csv.DictReader(handle)
