"""Request traces in the shared schema, and sampling request lengths from them.

Schema: ``arrival_s,input_tokens,output_tokens[,hash_ids]`` (``hash_ids``: ``;``-joined ids
of 512-token prompt blocks; equal leading ids mean a shared prompt prefix). A trace is
loaded once and checked row by row, so a bad file fails before any load is sent.

(Named ``tracefile`` because Locust puts this folder on ``sys.path``, where a ``trace``
module would shadow the standard library's.)
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

REQUIRED_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")
DEFAULT_TRACE = Path(__file__).resolve().parent / "data" / "azure2023_conv_sample.csv"


class TraceError(ValueError):
    """A trace file that does not follow the schema (the message names file and line)."""


@dataclass(frozen=True, slots=True)
class TraceRow:
    arrival_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Trace:
    rows: tuple[TraceRow, ...]
    source: str

    @property
    def duration_s(self) -> float:
        return self.rows[-1].arrival_s if self.rows else 0.0


def load_trace(path: Path | str, *, limit: int | None = None) -> Trace:
    """Read a trace CSV; ``limit`` keeps only its first rows."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            return parse_trace(handle, source=str(path), limit=limit)
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror or exc}") from exc


def parse_trace(
    lines: Iterable[str], *, source: str = "<trace>", limit: int | None = None
) -> Trace:
    """Parse and check trace rows; arrival times are rebased so the first is 0."""
    reader = csv.DictReader(lines)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise TraceError(f"{source}: missing column(s) {', '.join(missing)}")
    has_hashes = "hash_ids" in (reader.fieldnames or ())
    rows: list[TraceRow] = []
    for record in reader:
        if limit is not None and len(rows) >= limit:
            break
        line = reader.line_num
        try:
            row = TraceRow(
                arrival_s=float(record["arrival_s"]),
                input_tokens=int(record["input_tokens"]),
                output_tokens=int(record["output_tokens"]),
                hash_ids=_hash_ids(record.get("hash_ids") or "") if has_hashes else (),
            )
        except (TypeError, ValueError) as exc:
            raise TraceError(f"{source}:{line}: {exc}") from exc
        if not math.isfinite(row.arrival_s) or row.input_tokens < 1 or row.output_tokens < 1:
            raise TraceError(f"{source}:{line}: need a finite arrival and token counts >= 1")
        if rows and row.arrival_s < rows[-1].arrival_s:
            raise TraceError(f"{source}:{line}: arrival_s goes back in time")
        rows.append(row)
    if not rows:
        raise TraceError(f"{source}: no rows")
    start = rows[0].arrival_s
    if start:
        rows = [replace(r, arrival_s=r.arrival_s - start) for r in rows]
    return Trace(tuple(rows), source)


def _hash_ids(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(";") if part)


@dataclass(frozen=True, slots=True)
class LengthLimits:
    """Caps for a server with a smaller context than the traced one (None: no cap)."""

    max_input_tokens: int | None = None
    max_output_tokens: int | None = None

    def apply(self, row: TraceRow) -> TraceRow:
        inputs = _cap(row.input_tokens, self.max_input_tokens)
        outputs = _cap(row.output_tokens, self.max_output_tokens)
        if (inputs, outputs) == (row.input_tokens, row.output_tokens):
            return row
        return replace(row, input_tokens=inputs, output_tokens=outputs)


def _cap(value: int, limit: int | None) -> int:
    return value if limit is None else min(value, limit)


class LengthSampler:
    """Draws whole rows uniformly with replacement, so input and output lengths keep the
    trace's joint distribution (long prompts with their own output lengths)."""

    def __init__(self, trace: Trace, rng: random.Random, limits: LengthLimits) -> None:
        self._rows = trace.rows
        self._rng = rng
        self._limits = limits

    def sample(self) -> TraceRow:
        return self._limits.apply(self._rng.choice(self._rows))


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (``q`` in [0, 1]) of ``values``; for reports and tests."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
