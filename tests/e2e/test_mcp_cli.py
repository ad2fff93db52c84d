"""``hayhooks mcp run`` (stdio and HTTP) and the mounted endpoint under ``hayhooks run --workers 2``,
as real subprocesses driven by the official ``mcp`` client."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.subscriptions import ToolsListChanged
from mcp_support import ADDER, CORE, FIXTURES, PIPELINE_TOOLS, WAIT, Notifications, tool_names

pytestmark = pytest.mark.e2e

HAYHOOKS = str(Path(sys.executable).with_name("hayhooks"))


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HAYHOOKS_")}
    return {**base, "HAYSTACK_TELEMETRY_ENABLED": "False", "PYTHONUNBUFFERED": "1", **extra}


def pipelines(tmp_path: Path) -> Path:
    target = tmp_path / "pipelines"
    shutil.copytree(FIXTURES, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mcp_run_http(pipelines_dir: Path, log_path: Path, **extra_env: str) -> Iterator[str]:
    """``hayhooks mcp run`` (http transport) on a free port; yields its base URL once healthy."""
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
            yield base
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)


def stdio_params(pipelines_dir: Path, **extra_env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=HAYHOOKS,
        args=["mcp", "run", "--transport", "stdio", "--pipelines-dir", str(pipelines_dir)],
        env=env(**extra_env),
    )


# -- stdio -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_serves_the_pipelines(tmp_path, mode):
    params = stdio_params(pipelines(tmp_path))
    progress: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async with Client(params, mode=mode) as client:
        assert tool_names(await client.list_tools()) == CORE | PIPELINE_TOOLS
        rag = await client.call_tool("rag", {"question": "capital of Germany"})
        assert "Berlin is the capital of Germany." in rag.content[0].text
        greet = await client.call_tool("greet", {"name": "Ida", "place": "Turin"})
        assert greet.structured_content == {"greeting": "Hello Ida, welcome to Turin!"}
        streamed = await client.call_tool("stream", {"text": "a b"}, progress_callback=on_progress)
        assert streamed.content[0].text == "a b "
        # The pipeline prints to stdout while loading and running: the protocol stream survives.
        assert (await client.call_tool("noisy", {"text": "hi"})).content[0].text == "echo: hi"
        failed = await client.call_tool("broken_tool", {"n": 0})
        assert failed.is_error is True and "n must be positive" in failed.content[0].text
        assert (await client.call_tool("shout", {"text": "still up"})).structured_content[
            "shouted"
        ] == "STILL UP"
    assert progress == ["a ", "b "]


async def test_stdio_deploys_as_the_local_user_and_notifies(tmp_path):
    """Over stdio no token is needed (even with one set for HTTP); live sessions hear the change."""
    notes = Notifications()
    params = stdio_params(pipelines(tmp_path), HAYHOOKS_ADMIN_TOKEN="s3cret", HAYHOOKS_HOST="0.0.0.0")
    async with Client(params, mode="legacy", message_handler=notes) as client:
        assert "adder" not in tool_names(await client.list_tools())
        deployed = await client.call_tool(
            "deploy_pipeline",
            {"name": "adder", "files": {"pipeline_wrapper.py": ADDER.replace("{doc}", "Add two numbers.")}},
        )
        assert deployed.is_error is False, deployed.content
        await notes.wait()
        assert "adder" in tool_names(await client.list_tools())
        assert (await client.call_tool("adder", {"a": 4, "b": 5})).content[0].text == "9"
        assert (await client.call_tool("undeploy_pipeline", {"name": "adder"})).is_error is False
        await notes.wait()
        assert "adder" not in tool_names(await client.list_tools())
    assert (tmp_path / "pipelines" / "adder").exists() is False


async def test_stdio_modern_session_listens_for_changes(tmp_path):
    params = stdio_params(pipelines(tmp_path))
    async with Client(params) as client:
        assert client.protocol_version == "2026-07-28"
        async with client.listen(tools_list_changed=True) as subscription:
            deployed = await client.call_tool(
                "deploy_pipeline",
                {
                    "name": "adder",
                    "files": {"pipeline_wrapper.py": ADDER.replace("{doc}", "Add two numbers.")},
                },
            )
            assert deployed.is_error is False, deployed.content
            with anyio.fail_after(WAIT):
                assert await subscription.__anext__() == ToolsListChanged()
        assert "adder" in tool_names(await client.list_tools())


async def test_stdio_refuses_deploys_when_disabled(tmp_path):
    async with Client(stdio_params(pipelines(tmp_path), HAYHOOKS_DISABLE_RUNTIME_DEPLOY="true")) as client:
        assert "deploy_pipeline" not in tool_names(await client.list_tools())
        refused = await client.call_tool(
            "deploy_pipeline",
            {"name": "x", "files": {"pipeline_wrapper.py": ADDER.replace("{doc}", "Add two numbers.")}},
        )
        assert refused.is_error is True and "disabled" in refused.content[0].text


# -- standalone HTTP server following a shared directory ------------------------------------------------------
async def test_mcp_run_http_follows_deploys_made_through_hayhooks_run(tmp_path, hayhooks_server):
    folder = pipelines(tmp_path)
    server = hayhooks_server(folder)
    notes = Notifications()
    with mcp_run_http(folder, tmp_path / "mcp-run.log") as base:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=60) as http,
            # a handshake-era Streamable HTTP session (stateful on `mcp run`): notified on its GET stream
            Client(f"{base}/mcp", mode="legacy", message_handler=notes) as session,
            Client(sse_client(f"{base}/sse")) as over_sse,
        ):
            assert tool_names(await session.list_tools()) == CORE | PIPELINE_TOOLS
            assert tool_names(await over_sse.list_tools()) == CORE | PIPELINE_TOOLS
            response = await http.post(
                "/deploy-files",
                json={
                    "name": "shared_adder",
                    "files": {"pipeline_wrapper.py": ADDER.replace("{doc}", "Add two numbers.")},
                },
            )
            assert response.status_code == 200, response.text
            await notes.wait()
            assert "shared_adder" in tool_names(await session.list_tools())
            assert (await over_sse.call_tool("shared_adder", {"a": 1, "b": 2})).content[0].text == "3"
            response = await http.post("/undeploy/shared_adder")
            assert response.status_code == 200, response.text
            await notes.wait()
            assert "shared_adder" not in tool_names(await session.list_tools())


# -- the mounted endpoint with several workers --------------------------------------------------------------
async def test_workers_two_fresh_sessions_all_see_the_same_tools(tmp_path, hayhooks_server):
    server = hayhooks_server(pipelines(tmp_path), "--workers", "2")
    mcp_url = f"{server.url}/mcp"
    # /ready answers once one worker serves; wait (bounded) until both have joined the cluster.
    with anyio.fail_after(90):
        while len(httpx.get(f"{server.url}/status", timeout=5).json()["workers"]) < 2:  # noqa: ASYNC210
            await anyio.sleep(0.2)

    async def fresh_sessions(expected: set[str], call: tuple[str, dict[str, Any], str] | None = None) -> None:
        for i in range(20):
            async with Client(mcp_url, mode="legacy" if i % 2 else "auto") as client:
                assert tool_names(await client.list_tools()) == expected
                if call is not None:
                    name, args, text = call
                    assert (await client.call_tool(name, args)).content[0].text == text

    await fresh_sessions(CORE | PIPELINE_TOOLS, ("shout", {"text": "w"}, '{"shouted": "W", "length": 1}'))
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        response = await http.post(
            "/deploy-files",
            json={
                "name": "adder",
                "files": {"pipeline_wrapper.py": ADDER.replace("{doc}", "Add two numbers.")},
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["workers"] == 2  # both workers confirmed before the deploy returned
    await fresh_sessions(CORE | PIPELINE_TOOLS | {"adder"}, ("adder", {"a": 2, "b": 2}, "4"))
