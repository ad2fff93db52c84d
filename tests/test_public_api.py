"""What wrapper files import from ``hayhooks`` (the 2.x-compatible public surface)."""

import subprocess
import sys

import hayhooks


def test_every_public_name_resolves():
    for name in hayhooks.__all__:
        assert getattr(hayhooks, name) is not None, name
    assert hayhooks.AsyncPipeline is not None and hayhooks.Pipeline is not None


def test_importing_the_wrapper_base_stays_light():
    code = "import sys, hayhooks; from hayhooks import BasePipelineWrapper; print('fastapi' in sys.modules, 'mcp' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]
