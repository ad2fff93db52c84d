"""Tracing is optional: no OTLP variables, no OpenTelemetry work; the `all` extra has every extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_without_otlp_variables_no_sdk_or_exporter_is_loaded(tmp_path):
    code = (
        "import sys\n"
        "from hayhooks.server.app import create_app\n"
        "from hayhooks.settings import HayhooksSettings\n"
        f"create_app(HayhooksSettings(pipelines_dir={str(tmp_path)!r}))\n"
        "from hayhooks.observability import tracing\n"
        "assert tracing.setup_tracing() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter', "
        "'haystack_integrations.tracing'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HAYHOOKS_"))}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    # Building an app (and importing the module-level one) touches no file: that waits for startup.
    assert list(cwd.iterdir()) == [] and not (tmp_path / ".hayhooks").exists()


def test_endpoint_without_the_extra_is_a_warning_with_the_fix(tmp_path):
    """Simulate a missing extra by hiding the OpenTelemetry SDK from the import system."""
    code = (
        "import sys\n"
        "sys.modules['opentelemetry.sdk'] = None\n"
        "from hayhooks.observability.tracing import setup_tracing\n"
        "assert setup_tracing() is None\n"
    )
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'hayhooks[tracing]'" in out.stderr


def test_all_extra_installs_every_optional_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # Test-only extras (dev tooling, chart and Dockerfile checks) are not part of the product.
    others = {name for name in extras if name not in ("all", "dev", "deploy-test")}
    assert "tracing" in others
    assert {f"hayhooks[{name}]" for name in others} <= set(extras["all"])
