"""``tidegate worker``'s flags: parsed into settings, errors named, vLLM's argv printable."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

import pytest

from workers.vllm.cli import parse_bytes, parse_settings
from workers.vllm.command import vllm_command
from workers.vllm.settings import VllmWorkerSettings


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4096", 4096),
        ("128M", 128_000_000),
        ("128Mi", 128 * 2**20),
        ("1Gi", 2**30),
        ("1.5G", 1_500_000_000),
        ("2k", 2000),
        ("256MiB", 256 * 2**20),
    ],
)
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "lots", "1T", "-5", "1 Mo"])
def test_parse_bytes_refuses_nonsense(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bytes(text)


def test_flags_become_settings_and_the_rest_passes_through():
    settings, print_only = parse_settings(
        [
            "--model", "/m", "--served-model-name", "tiny", "--max-num-seqs", "4",
            "--no-enable-prefix-caching", "--enforce-eager", "--kv-cache-memory-bytes", "256Mi",
            "--drain-grace-s", "5", "--", "--dtype", "float32", "--seed", "1",
        ]
    )  # fmt: skip
    assert not print_only
    assert settings.model == "/m" and settings.name == "tiny"
    assert settings.max_num_seqs == 4 and settings.kv_cache_memory_bytes == 256 * 2**20
    assert not settings.enable_prefix_caching and settings.enforce_eager
    assert settings.drain_grace_s == 5
    assert settings.scheduling_policy is None  # vLLM's own default, not passed
    assert settings.extra_args == ("--dtype", "float32", "--seed", "1")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "m", "--max-num-seqs", "0"], "--max-num-seqs"),
        (["--model", "m", "--gpu-memory-utilization", "2"], "--gpu-memory-utilization"),
        (["--port", "1"], "--model"),
        (["--model", "m", "--scheduling-policy", "lifo"], "--scheduling-policy"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        parse_settings(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_print_command_shows_vllms_argv_without_starting_it():
    result = subprocess.run(
        [sys.executable, "-m", "tidegate", "worker", "--model", "/m", "--port", "9001",
         "--print-command", "--", "--dtype", "float32"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    argv = shlex.split(result.stdout)
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--port") + 1] == "9001"
    assert argv[-2:] == ["--dtype", "float32"]


def test_flags_not_given_leave_the_settings_defaults():
    settings, _ = parse_settings(["--model", "m"])
    assert settings == VllmWorkerSettings(model="m")


def test_scheduling_policy_flag_reaches_vllms_command_line():
    settings, _ = parse_settings(["--model", "m", "--scheduling-policy", "priority"])
    assert settings.scheduling_policy == "priority"
    argv = vllm_command(settings, "python")
    assert argv[argv.index("--scheduling-policy") + 1] == "priority"
