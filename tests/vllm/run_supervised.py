"""Runs the worker wrapper's supervisor around ``fake_vllm.py`` (what ``tidegate worker``
does around vLLM): ``run_supervised.py PORT GRACE_S STOP_TIMEOUT_S [FAKE ARGS...]``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from workers.vllm.command import DRAIN_FILE_ENV
from workers.vllm.supervisor import DrainTiming, Supervisor, drain_flag_dir, exit_like

FAKE = Path(__file__).with_name("fake_vllm.py")


def main() -> int:
    port, grace_s, stop_timeout_s, *fake_args = sys.argv[1:]
    logging.basicConfig(level="INFO", format="%(name)s: %(message)s")
    with drain_flag_dir() as drain_file:
        supervisor = Supervisor(
            [sys.executable, str(FAKE), "--port", port, *fake_args],
            {**os.environ, DRAIN_FILE_ENV: str(drain_file)},
            base_url=f"http://127.0.0.1:{port}",
            drain_file=drain_file,
            timing=DrainTiming(float(grace_s), 0.05, float(stop_timeout_s)),
        )
        code = supervisor.run()
    return exit_like(code)


if __name__ == "__main__":
    sys.exit(main())
