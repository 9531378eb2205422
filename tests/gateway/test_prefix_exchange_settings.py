"""The prefix-exchange settings: validated at load, Redis required to enable it."""

from __future__ import annotations

import pytest

from gateway.settings import SettingsError, load_settings

REDIS = {"url": "redis://127.0.0.1:6379/0"}


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"prefix_exchange": {"enabled": True}}, "needs a Redis server"),
        ({"redis": {"url": "http://x:6379"}}, "must start with redis://"),
        ({"redis": REDIS, "prefix_exchange": {"interval_s": 0}}, "interval_s"),
        ({"redis": REDIS, "prefix_exchange": {"max_batch": 0}}, "max_batch"),
        ({"redis": REDIS, "prefix_exchange": {"chanel": "x"}}, "chanel"),
    ],
)
def test_bad_exchange_settings_fail_at_load(overrides, problem):
    with pytest.raises(SettingsError, match=problem):
        load_settings(overrides=overrides)


def test_the_exchange_is_off_by_default_and_on_with_redis():
    assert not load_settings().prefix_exchange.enabled
    assert load_settings().redis is None
    settings = load_settings(overrides={"redis": REDIS, "prefix_exchange": {"enabled": True}})
    assert settings.prefix_exchange.enabled
    assert settings.prefix_exchange.interval_s == 1.0
