"""The CLI commands' behaviour that needs no running server: version, help, local input errors,
settings errors and an unreachable server. (Everything against a real server is in tests/e2e.)"""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from hayhooks.cli.main import app
from hayhooks.version import __version__

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key in ("HAYHOOKS_HOST", "HAYHOOKS_PORT", "HAYHOOKS_ADMIN_TOKEN", "HAYHOOKS_WORKERS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound then released; nobody else grabs it in this short window)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"hayhooks {__version__}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], ["run", "status", "deploy", "pipeline", "mcp"]),
        (["pipeline", "--help"], ["deploy-files", "deploy-yaml", "undeploy", "run"]),
        (
            ["run", "--help"],
            [
                "--host",
                "--port",
                "--pipelines-dir",
                "--root-path",
                "--additional-python-path",
                "--reload",
                "--workers",
            ],
        ),
        (
            ["pipeline", "deploy-files", "--help"],
            ["--name", "--overwrite", "--skip-saving-files", "--url", "--token"],
        ),
        (["pipeline", "deploy-yaml", "--help"], ["--name", "--overwrite", "--description", "--no-save-file"]),
        (["deploy", "--help"], ["--name", "--overwrite", "--description", "--no-save-file"]),
        (["pipeline", "run", "--help"], ["--param", "--file", "--dir", "--stream"]),
        (["pipeline", "undeploy", "--help"], ["--force"]),
    ],
)
def test_help_lists_commands_and_options(args, expected):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for word in expected:
        assert word in result.output


def test_unreachable_server_is_one_line_and_exit_1(closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    for args in (["status"], ["pipeline", "run", "x", "--param", "a=1"], ["pipeline", "undeploy", "x"]):
        result = runner.invoke(app, [*args, "--url", url])
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"Error: Cannot reach the Hayhooks server at {url}")
        assert "Traceback" not in result.output


def test_unreachable_server_from_env_host_port(monkeypatch, closed_port):
    monkeypatch.setenv("HAYHOOKS_HOST", "0.0.0.0")
    monkeypatch.setenv("HAYHOOKS_PORT", str(closed_port))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert f"http://127.0.0.1:{closed_port}" in result.stderr


def test_deploy_files_local_errors_exit_2_before_contacting_anything(tmp_path, closed_port):
    url = f"http://127.0.0.1:{closed_port}"  # nothing listens: reaching it would be exit 1
    result = runner.invoke(
        app, ["pipeline", "deploy-files", "-n", "p", str(tmp_path / "missing"), "--url", url]
    )
    assert result.exit_code == 2
    assert "Pipeline folder not found" in result.stderr

    (tmp_path / "empty").mkdir()
    result = runner.invoke(
        app, ["pipeline", "deploy-files", "-n", "p", str(tmp_path / "empty"), "--url", url]
    )
    assert result.exit_code == 2
    assert "No pipeline_wrapper.py" in result.stderr

    folder = tmp_path / "with_binary"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text("x = 1\n")
    (folder / "model.bin").write_bytes(b"\x00\x01\x02")
    result = runner.invoke(app, ["pipeline", "deploy-files", "-n", "p", str(folder), "--url", url])
    assert result.exit_code == 2
    assert "model.bin is a binary file" in result.stderr


def test_deploy_files_requires_name(tmp_path):
    result = runner.invoke(app, ["pipeline", "deploy-files", str(tmp_path)])
    assert result.exit_code == 2
    assert "--name" in result.output


def test_deploy_yaml_missing_file(tmp_path):
    for args in (["pipeline", "deploy-yaml"], ["deploy"]):
        result = runner.invoke(app, [*args, str(tmp_path / "nope.yml")])
        assert result.exit_code == 2
        assert "YAML file not found" in result.stderr


def test_run_bad_param_and_missing_file(tmp_path, closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    result = runner.invoke(app, ["pipeline", "run", "p", "--param", "oops", "--url", url])
    assert result.exit_code == 2
    assert "Invalid --param 'oops'" in result.stderr
    result = runner.invoke(app, ["pipeline", "run", "p", "--file", str(tmp_path / "x.pdf"), "--url", url])
    assert result.exit_code == 2
    assert "File not found" in result.stderr


def test_run_rejects_invalid_settings_flags():
    result = runner.invoke(app, ["run", "--workers", "zero"])
    assert result.exit_code == 2
    assert "--workers" in result.stderr and "positive number or 'auto'" in result.stderr


def test_client_commands_report_invalid_env_settings(monkeypatch):
    monkeypatch.setenv("HAYHOOKS_PORT", "not-a-port")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert "HAYHOOKS_PORT" in result.stderr
