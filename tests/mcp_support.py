"""Helpers shared by the MCP tests (in-process and e2e)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
from conftest import free_port
from mcp import types

WAIT = 30  # seconds; a bound for what should happen promptly, never asserted on
FIXTURES = Path(__file__).parent / "fixtures" / "mcp_pipelines"
CORE = {"get_all_pipeline_statuses", "get_pipeline_status", "deploy_pipeline", "undeploy_pipeline"}
HAYHOOKS = str(Path(sys.executable).with_name("hayhooks"))
PIPELINE_TOOLS = {"rag", "shout", "stream", "astream", "broken_tool", "greet", "noisy"}

# A wrapper deployed at runtime by the tests; {doc} is its tool description.
ADDER = '''
from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        self.pipeline = None

    def run_api(self, a: int, b: int) -> int:
        """{doc}"""
        return a + b
'''


def tool_names(result: types.ListToolsResult) -> set[str]:
    return {t.name for t in result.tools}


class Notifications:
    """A legacy-session message handler recording tools/list_changed notifications."""

    def __init__(self) -> None:
        self.count = 0
        self._event = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.count += 1
            self._event.set()

    async def wait(self) -> None:
        with anyio.fail_after(WAIT):
            await self._event.wait()
        self._event = anyio.Event()


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HAYHOOKS_")}
    return {**base, "HAYSTACK_TELEMETRY_ENABLED": "False", "PYTHONUNBUFFERED": "1", **extra}


@contextmanager
def mcp_run_http(pipelines_dir: Path, log_path: Path, **extra_env: str) -> Iterator[str]:
    """``hayhooks mcp run`` (http transport) on a free port; yields its base URL once healthy."""
    with mcp_run_http_process(pipelines_dir, log_path, **extra_env) as (base, _):
        yield base


@contextmanager
def mcp_run_http_process(
    pipelines_dir: Path, log_path: Path, **extra_env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``mcp_run_http``, also yielding the process (to signal it)."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                HAYHOOKS,
                "mcp",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--pipelines-dir",
                str(pipelines_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env(**extra_env),
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"mcp run exited with {proc.returncode}:\n{log_path.read_text()}")
                try:
                    if httpx.get(f"{base}/health", timeout=2).json().get("ready"):
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mcp run did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield base, proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
