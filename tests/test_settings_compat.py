"""Settings as Hayhooks 2.x setups give them."""

from __future__ import annotations

from hayhooks.settings import HayhooksSettings


def test_the_legacy_log_variable_is_read_and_hayhooks_log_level_wins(monkeypatch) -> None:
    monkeypatch.delenv("HAYHOOKS_LOG_LEVEL", raising=False)
    monkeypatch.setenv("LOG", "DEBUG")
    assert HayhooksSettings().log_level == "DEBUG"
    assert HayhooksSettings(log_level="warning").log_level == "warning"
    monkeypatch.setenv("HAYHOOKS_LOG_LEVEL", "error")
    assert HayhooksSettings().log_level == "error"


def test_https_and_ssl_settings_default_off(monkeypatch) -> None:
    settings = HayhooksSettings()
    assert settings.use_https is False and settings.disable_ssl is False
    monkeypatch.setenv("HAYHOOKS_USE_HTTPS", "true")
    monkeypatch.setenv("HAYHOOKS_DISABLE_SSL", "true")
    settings = HayhooksSettings()
    assert settings.use_https is True and settings.disable_ssl is True
