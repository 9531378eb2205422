"""``tidegate up --engine vllm`` without starting vLLM: what it refuses, what it builds."""

from __future__ import annotations

import pytest

from tidegate import up


def test_without_vllm_installed_it_says_which_extra_to_install(monkeypatch, capsys):
    monkeypatch.setattr(up, "installed_vllm", lambda: None)
    assert up.main(["--engine", "vllm"]) == 2
    err = capsys.readouterr().err
    assert ".[cpu]" in err and ".[gpu]" in err


def test_unknown_engine_is_refused(capsys):
    with pytest.raises(SystemExit) as exited:
        up.main(["--engine", "tpu"])
    assert exited.value.code == 2


def test_installed_vllm_names_a_build_or_none():
    assert up.installed_vllm() in {"cpu", "gpu", None}
