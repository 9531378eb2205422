"""Whether the engine stack (the ``cpu`` or ``gpu`` extra) is installed.

Tests that need it carry ``requires_engine``: skipped where it is missing, except in CI
(``CI`` set), where a missing engine must fail the run rather than pass it quietly.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

MISSING = [m for m in ("vllm", "transformers", "tokenizers") if importlib.util.find_spec(m) is None]

requires_engine = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"needs the 'cpu' or 'gpu' extra ({', '.join(MISSING)} missing)",
)
