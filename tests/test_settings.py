import pytest
from pydantic import ValidationError

from hayhooks.settings import HayhooksSettings


def test_env_prefix_and_overrides(monkeypatch):
    monkeypatch.setenv("HAYHOOKS_PORT", "9999")
    monkeypatch.setenv("HAYHOOKS_PIPELINES_DIR", "/tmp/somewhere")
    settings = HayhooksSettings()
    assert settings.port == 9999 and str(settings.pipelines_dir) == "/tmp/somewhere"
    assert HayhooksSettings(port=1).port == 1


def test_dotenv_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("HAYHOOKS_ADMIN_TOKEN=from-dotenv\n")
    assert HayhooksSettings().admin_token == "from-dotenv"


def test_workers():
    assert HayhooksSettings(workers="3").worker_count == 3
    assert HayhooksSettings(workers="auto").worker_count >= 1
    with pytest.raises(ValidationError):
        HayhooksSettings(workers="0")
    with pytest.raises(ValidationError):
        HayhooksSettings(workers="many")


def test_defaults_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    for name, _field in HayhooksSettings.model_fields.items():
        assert f"HAYHOOKS_{name.upper()}" in doc, f"HAYHOOKS_{name.upper()} is not documented"
