from pathlib import Path

import pytest

from gateway.settings import SettingsError, load_settings


def test_defaults_load():
    settings = load_settings()
    assert settings.server.port == 8000
    assert settings.discovery.workers == ()


def test_yaml_env_and_overrides_in_precedence_order(tmp_path: Path, monkeypatch):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "server: {port: 9000, host: 0.0.0.0}\n"
        "discovery: {workers: [http://a:1/, http://b:2]}\n"
        "timeouts: {connect_s: 5, idle_stream_s: 30}\n"
        "models: [llama]\n"
    )
    monkeypatch.setenv("TIDEGATE_TIMEOUTS__CONNECT_S", "0.5")
    settings = load_settings(config, {"server": {"port": 9100}})
    assert settings.server.port == 9100  # flag beats file
    assert settings.server.host == "0.0.0.0"  # file beats default
    assert settings.timeouts.connect_s == 0.5  # env beats file
    assert settings.timeouts.idle_stream_s == 30
    assert settings.discovery.workers == ("http://a:1", "http://b:2")
    assert settings.models == ("llama",)


def test_comma_separated_workers():
    settings = load_settings(overrides={"discovery": {"workers": "http://a:1, http://b:2"}})
    assert settings.discovery.workers == ("http://a:1", "http://b:2")


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"discovery": {"workers": ["ftp://a"]}}, "discovery.workers"),
        ({"discovery": {"workers": ["http://"]}}, "discovery.workers"),
        ({"timeouts": {"connect_s": 0}}, "timeouts.connect_s"),
        ({"retries": {"max_attempts": 0}}, "retries.max_attempts"),
        ({"server": {"prot": 1}}, "server.prot"),
        ({"bogus": True}, "bogus"),
    ],
)
def test_invalid_settings_fail_with_the_field_named(overrides, problem):
    with pytest.raises(SettingsError, match=problem.replace(".", r"\.")):
        load_settings(overrides=overrides)


def test_unknown_key_in_file_fails(tmp_path: Path):
    config = tmp_path / "bad.yaml"
    config.write_text("timeouts: {conect_s: 1}\n")
    with pytest.raises(SettingsError, match="conect_s"):
        load_settings(config)


def test_missing_file_fails(tmp_path: Path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_admission_priority_defaults():
    settings = load_settings()
    assert settings.admission.priority_headroom == {2: 32}  # critical runs 32 more per worker
    assert settings.upstream.engine_priority is False  # vLLM's fcfs refuses a priority


@pytest.mark.parametrize(
    ("admission", "headroom"),
    [
        ({"priority_headroom": {}}, {}),
        ({"priority_headroom": {"1": 4, 2: 0}}, {1: 4, 2: 0}),
        (
            {"priorities": {"gold": 7, "bronze": 0}, "default_priority": "bronze",
             "priority_headroom": {7: 16}},
            {7: 16},
        ),
    ],
)  # fmt: skip
def test_priority_headroom_keyed_by_priority_values(admission, headroom):
    assert load_settings(overrides={"admission": admission}).admission.priority_headroom == (
        headroom
    )


@pytest.mark.parametrize(
    ("admission", "problem"),
    [
        ({"priority_headroom": {5: 8}}, "names priority 5, which is not a value"),
        ({"priority_headroom": {2: -1}}, "must be >= 0"),
        ({"priority_headroom": {"critical": 8}}, r"admission\.priority_headroom"),
        ({"slots_only_at_or_above": 5}, "slots_only_at_or_above is 5, which is not a value"),
        (
            {"priorities": {"gold": 7, "bronze": 0}, "default_priority": "bronze"},
            "names priority 2.*bronze=0, gold=7",  # the default {2: 32} needs re-keying
        ),
    ],
)
def test_bad_priority_headroom_fails_at_load(admission, problem):
    with pytest.raises(SettingsError, match=problem):
        load_settings(overrides={"admission": admission})


def test_engine_priority_from_the_environment(monkeypatch):
    monkeypatch.setenv("TIDEGATE_UPSTREAM__ENGINE_PRIORITY", "true")
    monkeypatch.setenv("TIDEGATE_ADMISSION__PRIORITY_HEADROOM", '{"2": 64}')
    settings = load_settings()
    assert settings.upstream.engine_priority is True
    assert settings.admission.priority_headroom == {2: 64}
    with pytest.raises(SettingsError, match=r"upstream\.engine_priorty"):
        load_settings(overrides={"upstream": {"engine_priorty": True}})
