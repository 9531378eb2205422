"""The ``tidegate`` command: one thin entry that dispatches to each package's own command.

Subcommands are imported lazily so that, say, ``tidegate sim-worker`` never loads the
gateway and ``tidegate gateway`` never loads anything it does not serve with.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module, one-line help). Each module exposes ``main(argv) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("tidegate.up", "run the gateway plus local workers in one process tree"),
    "gateway": ("gateway.cli", "run the gateway in front of existing workers"),
    "sim-worker": ("workers.sim.cli", "run a simulated vLLM-compatible worker"),
    "worker": ("workers.vllm.cli", "run a real vLLM worker that drains on SIGTERM"),
    "make-tiny-model": ("workers.tinymodel.cli", "build a tiny random model for local vLLM"),
    "autoscaler": ("autoscaler.controller.cli", "scale worker pools from ModelScaler objects"),
    "tune": ("workers.tune.cli", "cheapest GPU, vLLM settings and replicas for a trace and SLO"),
    "replay": ("autoscaler.replay.cli", "what-if of a scaling policy on a trace, in virtual time"),
}


def _usage() -> str:
    lines = ["usage: tidegate COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<16} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'tidegate COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"tidegate: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    command: Callable[[list[str]], int] = module.main
    return command(rest)


if __name__ == "__main__":
    raise SystemExit(main())
