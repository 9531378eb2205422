"""``tidegate tune``: the cheapest vLLM deployment that meets a latency SLO for a trace.

Exit status: 0 with a recommendation, 1 when no deployment tried meets the SLO, 2 on a
bad option, price file, profile file or trace.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from workers.tune.fleet import OnOutcome
from workers.tune.outcome import Breached, Outcome
from workers.tune.prices import DEFAULT_PRICE_LIST
from workers.tune.report import json_lines, plot_front, render_text
from workers.tune.space import Candidate
from workers.tune.tuner import TuneSettings, tune


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidegate tune",
        description="Sweep vLLM settings, GPU types and replica counts over a trace in the "
        "calibrated simulator; report the cost/latency front and the cheapest deployment "
        "that meets the SLO.",
    )
    parser.add_argument("--trace", required=True, help="CSV: arrival_s,input_tokens,output_tokens")
    parser.add_argument("--slo-ttft-p95", type=float, required=True, metavar="S")
    parser.add_argument("--slo-itl-p95", type=float, required=True, metavar="S")
    parser.add_argument("--model", default="llama-3.1-8b", help="a model spec name")
    parser.add_argument("--gpus", type=_names, default=(), help="e.g. h100,a100 (default: all)")
    parser.add_argument("--tp", type=_ints, default=(1, 2, 4, 8), help="default 1,2,4,8")
    parser.add_argument("--max-num-seqs", type=_ints, default=(64, 128, 256))
    parser.add_argument("--max-num-batched-tokens", type=_ints, default=(2048, 8192))
    parser.add_argument("--max-replicas", type=int, default=16)
    parser.add_argument("--max-model-len", type=int, help="default: the longest request")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument(
        "--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=True
    )
    prices = parser.add_argument_group("prices (USD per GPU-hour)")
    prices.add_argument("--price-list", default=DEFAULT_PRICE_LIST, help="built in: aws, lambda")
    prices.add_argument("--prices", help="YAML/JSON price file instead of --price-list")
    prices.add_argument(
        "--price", action="append", default=[], metavar="GPU=USD", help="override one price"
    )
    parser.add_argument("--profile-file", help="YAML/JSON file with more models and hardware")
    parser.add_argument("--search", choices=("bisect", "brute"), default="bisect")
    parser.add_argument("--limit", type=int, help="only the first N requests of the trace")
    parser.add_argument("--speedup", type=float, default=1.0, help="compress time by this")
    parser.add_argument(
        "--early-stop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop a replay once the SLO is lost (default on)",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines instead of tables")
    parser.add_argument("--plot", metavar="PNG", help="write the cost/latency front here")
    parser.add_argument("-v", "--verbose", action="store_true", help="each replay on stderr")
    return parser


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> TuneSettings:
    fields = {k: v for k, v in vars(args).items() if k not in {"json", "plot", "verbose"}}
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        return TuneSettings(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in err['loc'][:1]).replace('_', '-')}: {err['msg']}"
            for err in exc.errors()
        )
        parser.error(problems)


def _progress(outcome: Outcome, same_as: Candidate | None) -> None:
    verdict = "meets" if outcome.meets_slo else "breaks"
    if same_as is not None:
        detail = f"the same replay as {same_as.label}: its smaller limits never bound"
    elif isinstance(outcome, Breached):
        detail = f"stopped after {outcome.finished:,} requests"
    else:
        detail = f"TTFT p95 {outcome.ttft_p95_s:.3f} s, ITL p95 {outcome.itl_p95_s:.4f} s"
    print(f"{outcome.candidate.label}: {verdict} the SLO ({detail})", file=sys.stderr)


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = _settings(parser, args)
    on_outcome: OnOutcome | None = _progress if args.verbose else None
    try:
        report = tune(settings, on_outcome=on_outcome)
    except (ValueError, KeyError, OSError) as exc:  # TuneError, PriceError, ProfileError
        parser.error(str(exc))
    if args.json:
        print("\n".join(json_lines(report)))
    else:
        print(render_text(report), end="")
    if args.plot:
        plot_front(report, args.plot)
    return 0 if report.recommended is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
