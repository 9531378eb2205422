"""Where the end-to-end fleet lives and how it is shaped (shared by fixtures and tests)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / ".run"
"""Tiny model, caches and worker logs: inside the work tree, git-ignored."""
MODEL = "tidegate-tiny"
MAX_NUM_SEQS = 4
