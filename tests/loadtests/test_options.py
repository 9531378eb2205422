"""Command-line options, checked into a typed config before any load is sent."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from loadtests.options import ConfigError, add_arguments, load_config
from loadtests.tracefile import DEFAULT_TRACE


def parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(args))


def test_defaults_are_valid():
    config = load_config(parse())
    assert config.shape == "constant"
    assert config.trace == Path(DEFAULT_TRACE)
    assert config.max_requests is None and config.max_output_tokens is None
    assert config.ignore_eos and config.slo == ()


def test_options_reach_the_config():
    config = load_config(
        parse("--shape", "replay", "--speedup", "3", "--max-requests", "50",
              "--slo", "ttft_p95_ms=500", "--no-ignore-eos", "--max-output-tokens", "64")
    )  # fmt: skip
    assert (config.shape, config.speedup, config.max_requests) == ("replay", 3.0, 50)
    assert not config.ignore_eos and config.max_output_tokens == 64
    assert [t.key for t in config.slo] == ["ttft_p95_ms", "min_requests"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speedup", "0"], "--speedup"),
        (["--stream-ratio", "2"], "--stream-ratio"),
        (["--max-requests", "-3"], "--max-requests"),
        (["--max-turns", "0"], "--max-turns"),
        (["--step-time", "0"], "--step-time"),
        (["--replay-users", "10", "--replay-max-users", "5"], "replay_max_users"),
        (["--slo", "ttft_p95=1"], "unknown SLO key"),
        (["--slo-file", "/nonexistent/slo.yaml"], "cannot read SLO file"),
    ],
)
def test_bad_options_are_refused_naming_the_option(args, message):
    with pytest.raises(ConfigError, match=message):
        load_config(parse(*args))


def test_an_unknown_shape_is_an_argparse_error():
    with pytest.raises(SystemExit):
        parse("--shape", "sawtooth")
