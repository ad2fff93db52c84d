"""The MCP endpoints mounted on the main app: a real uvicorn server, the official ``mcp`` client.

Streamable HTTP (``/mcp``; the client's default 2026-era protocol and the 2025 handshake) and the
legacy SSE transport (``/sse`` + ``/messages/``) over the pipelines in tests/fixtures/mcp_pipelines.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged
from mcp_support import ADDER, CORE, FIXTURES, PIPELINE_TOOLS, WAIT, Notifications, tool_names

from hayhooks.settings import HayhooksSettings

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


def adder_files(doc: str = "Add two numbers.") -> dict[str, str]:
    return {"pipeline_wrapper.py": ADDER.replace("{doc}", doc)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(pipelines_dir: Path, **overrides: Any) -> Iterator[SimpleNamespace]:
    """``create_app(settings)`` served by uvicorn on 127.0.0.1 in a thread, until the block ends."""
    from hayhooks.server.app import create_app

    port = _free_port()
    settings = HayhooksSettings(
        _env_file=None,
        host="127.0.0.1",
        port=port,
        pipelines_dir=pipelines_dir,
        poll_interval=0.2,
        **overrides,
    )
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (server.started and app.state.service.ready):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        yield SimpleNamespace(
            base=base, mcp=f"{base}/mcp", sse=f"{base}/sse", app=app, service=app.state.service
        )
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    pipelines = tmp_path_factory.mktemp("mcp") / "pipelines"
    shutil.copytree(FIXTURES, pipelines)
    with running_server(pipelines) as server:
        yield server


async def wait_for_tools(client: Client, predicate: Any) -> set[str]:
    with anyio.fail_after(WAIT):
        while True:
            names = tool_names(await client.list_tools())
            if predicate(names):
                return names
            await anyio.sleep(0.05)


# -- listing -----------------------------------------------------------------------------------------
async def test_streamable_http_lists_every_runnable_pipeline_as_a_tool(srv):
    async with Client(srv.mcp) as client:
        assert client.protocol_version == "2026-07-28"
        assert client.server_capabilities.tools is not None
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == CORE | PIPELINE_TOOLS  # not `hidden` (skip_mcp) nor `chat_only` (no run_api)
    rag = srv.service.registry.get("rag")
    assert tools["rag"].description == rag.run.description
    assert tools["rag"].description.startswith("Answer a question from the capitals knowledge base.")
    assert tools["rag"].input_schema == rag.run.request_model.model_json_schema()
    assert tools["rag"].input_schema["required"] == ["question"]
    assert tools["greet"].description == "Greet someone somewhere."
    assert set(tools["greet"].input_schema["properties"]) == {"name", "place"}


async def test_legacy_handshake_over_streamable_http_lists_the_same_tools(srv):
    async with Client(srv.mcp, mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_capabilities.tools.list_changed is True
        assert tool_names(await client.list_tools()) == CORE | PIPELINE_TOOLS


# -- calling -----------------------------------------------------------------------------------------
async def test_wrapper_tool_runs_the_haystack_pipeline(srv):
    async with Client(srv.mcp) as client:
        result = await client.call_tool("rag", {"question": "What is the capital of France?"})
    assert result.is_error is False
    text = result.content[0].text
    assert "Question: What is the capital of France?" in text
    assert "Paris is the capital of France." in text
    assert "Berlin" not in text  # top_k defaults to 1
    assert result.structured_content is None  # a string result is plain text


async def test_tool_result_matches_the_http_run_endpoint(srv):
    args = {"question": "Which river flows through Paris?", "top_k": 2}
    async with httpx.AsyncClient(base_url=srv.base) as http:
        response = await http.post("/rag/run", json=args)
    assert response.status_code == 200
    async with Client(srv.mcp) as client:
        result = await client.call_tool("rag", args)
    assert result.content[0].text == response.json()["result"]


async def test_yaml_pipeline_tool(srv):
    async with Client(srv.mcp) as client:
        result = await client.call_tool("greet", {"name": "Ann", "place": "Rome"})
    assert result.is_error is False
    assert result.structured_content == {"greeting": "Hello Ann, welcome to Rome!"}
    assert json.loads(result.content[0].text) == {"greeting": "Hello Ann, welcome to Rome!"}


async def test_async_wrapper_dict_result_is_structured(srv):
    async with Client(srv.mcp) as client:
        result = await client.call_tool("shout", {"text": "hello"})
    assert result.structured_content == {"shouted": "HELLO", "length": 5}
    assert json.loads(result.content[0].text) == {"shouted": "HELLO", "length": 5}


async def test_streaming_tool_collects_chunks_and_reports_progress(srv):
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with Client(srv.mcp) as client:
        result = await client.call_tool("stream", {"text": "one two three"}, progress_callback=on_progress)
        plain = await client.call_tool("stream", {"text": "no token"})
    assert result.is_error is False
    assert result.content[0].text == "one two three "
    assert progress == [(1.0, "one "), (2.0, "two "), (3.0, "three ")]
    assert plain.content[0].text == "no token "


async def test_async_generator_tool(srv):
    async with Client(srv.mcp) as client:
        result = await client.call_tool("astream", {"count": 4})
    assert result.content[0].text == "1;2;3;4;"


async def test_failing_tool_is_a_tool_error_and_the_server_keeps_serving(srv):
    async with Client(srv.mcp) as client:
        failed = await client.call_tool("broken_tool", {"n": 0})
        ok = await client.call_tool("broken_tool", {"n": 3})
    assert failed.is_error is True
    assert "n must be positive" in failed.content[0].text
    assert ok.is_error is False and ok.structured_content == {"result": [0, 1, 2]}


async def test_invalid_arguments_are_a_tool_error(srv):
    async with Client(srv.mcp) as client:
        missing = await client.call_tool("shout", {})
        wrong = await client.call_tool("broken_tool", {"n": "many"})
    assert missing.is_error is True and "text" in missing.content[0].text
    assert wrong.is_error is True and "n" in wrong.content[0].text


async def test_unknown_and_hidden_tools_are_protocol_errors(srv):
    async with Client(srv.mcp) as client:
        for name in ("nope", "hidden", "chat_only"):
            with pytest.raises(MCPError, match="Unknown tool"):
                await client.call_tool(name, {"x": 1})


async def test_sse_transport_in_both_protocol_eras(srv):
    for mode in ("auto", "legacy"):
        async with Client(sse_client(srv.sse), mode=mode) as client:
            assert tool_names(await client.list_tools()) == CORE | PIPELINE_TOOLS
            result = await client.call_tool("greet", {"name": "Bo", "place": "Oslo"})
            assert result.structured_content == {"greeting": "Hello Bo, welcome to Oslo!"}
            failed = await client.call_tool("broken_tool", {"n": -1})
            assert failed.is_error is True


# -- core tools ---------------------------------------------------------------------------------------
async def test_status_tools(srv):
    async with Client(srv.mcp) as client:
        everything = await client.call_tool("get_all_pipeline_statuses", {})
        one = await client.call_tool("get_pipeline_status", {"name": "greet"})
        hidden = await client.call_tool("get_pipeline_status", {"name": "hidden"})
        missing = await client.call_tool("get_pipeline_status", {"name": "nope"})
    assert set(everything.structured_content["pipelines"]) >= PIPELINE_TOOLS | {"hidden", "chat_only"}
    assert one.structured_content["name"] == "greet" and one.structured_content["type"] == "yaml"
    assert one.structured_content["mcp_tool"] is True
    assert hidden.structured_content["mcp_tool"] is False
    assert missing.is_error is True and "nope" in missing.content[0].text


async def test_deploy_and_undeploy_tools_on_a_loopback_server(srv):
    async with Client(srv.mcp) as client:
        deployed = await client.call_tool(
            "deploy_pipeline", {"name": "mcp_adder", "files": adder_files(), "save_files": False}
        )
        assert deployed.is_error is False, deployed.content
        assert deployed.structured_content["success"] is True
        assert "mcp_adder" in tool_names(await client.list_tools())
        assert (await client.call_tool("mcp_adder", {"a": 2, "b": 3})).content[0].text == "5"
        again = await client.call_tool("deploy_pipeline", {"name": "mcp_adder", "files": adder_files()})
        assert again.is_error is True and "already exists" in again.content[0].text
        removed = await client.call_tool("undeploy_pipeline", {"name": "mcp_adder"})
        assert removed.is_error is False
        assert "mcp_adder" not in tool_names(await client.list_tools())
        bad = await client.call_tool(
            "deploy_pipeline", {"name": "bad", "files": {"pipeline_wrapper.py": "x = ("}}
        )
        assert bad.is_error is True
        assert "bad" not in tool_names(await client.list_tools())


# -- live changes ---------------------------------------------------------------------------------------
async def test_http_deploy_changes_tools_and_notifies_live_sessions(srv):
    """Deploy, overwrite and undeploy through the HTTP API; MCP sessions see each change at once."""
    legacy_notes = Notifications()
    async with (
        httpx.AsyncClient(base_url=srv.base, timeout=30) as http,
        Client(sse_client(srv.sse), mode="legacy", message_handler=legacy_notes) as sse_legacy,
        Client(srv.mcp) as modern,
    ):
        assert "http_adder" not in tool_names(await sse_legacy.list_tools())
        async with modern.listen(tools_list_changed=True) as subscription:
            # deploy
            response = await http.post("/deploy-files", json={"name": "http_adder", "files": adder_files()})
            assert response.status_code == 200, response.text
            with anyio.fail_after(WAIT):
                event = await subscription.__anext__()
            assert event == ToolsListChanged()
            await legacy_notes.wait()
            assert "http_adder" in tool_names(await modern.list_tools())
            assert "http_adder" in tool_names(await sse_legacy.list_tools())
            assert (await sse_legacy.call_tool("http_adder", {"a": 20, "b": 22})).content[0].text == "42"

            # overwrite: the new description is served
            response = await http.post(
                "/deploy-files",
                json={"name": "http_adder", "files": adder_files("Add two integers."), "overwrite": True},
            )
            assert response.status_code == 200, response.text
            with anyio.fail_after(WAIT):
                await subscription.__anext__()
            await legacy_notes.wait()
            tools = {t.name: t for t in (await modern.list_tools()).tools}
            assert tools["http_adder"].description == "Add two integers."

            # undeploy
            response = await http.post("/undeploy/http_adder")
            assert response.status_code == 200, response.text
            with anyio.fail_after(WAIT):
                await subscription.__anext__()
            await legacy_notes.wait()
            assert "http_adder" not in tool_names(await modern.list_tools())
            assert "http_adder" not in tool_names(await sse_legacy.list_tools())
    assert legacy_notes.count == 3


async def test_hand_edit_of_the_directory_reaches_sessions(srv):
    """A pipeline dropped into the directory by hand (picked up by polling) notifies too."""
    notes = Notifications()
    folder = srv.service.store.root / "hand_added"
    async with Client(sse_client(srv.sse), mode="legacy", message_handler=notes) as client:
        await client.list_tools()
        folder.mkdir()
        (folder / "pipeline_wrapper.py").write_text(adder_files("Added by hand.")["pipeline_wrapper.py"])
        try:
            await notes.wait()
            assert "hand_added" in tool_names(await client.list_tools())
        finally:
            shutil.rmtree(folder)
        await notes.wait()
        assert "hand_added" not in tool_names(await client.list_tools())


# -- deploy protection ---------------------------------------------------------------------------------
def _client_with_token(url: str, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)))


async def test_admin_token_guards_the_deploy_tools(tmp_path):
    with running_server(tmp_path / "pipelines", admin_token="s3cret") as server:
        async with _client_with_token(server.mcp, None) as anonymous:
            refused = await anonymous.call_tool(
                "deploy_pipeline", {"name": "guarded", "files": adder_files()}
            )
            assert refused.is_error is True and "Bearer" in refused.content[0].text
            # reading needs no token
            assert (await anonymous.call_tool("get_all_pipeline_statuses", {})).is_error is False
        async with _client_with_token(server.mcp, "wrong") as wrong:
            assert (
                await wrong.call_tool("deploy_pipeline", {"name": "guarded", "files": adder_files()})
            ).is_error
        async with Client(sse_client(server.sse, headers={"Authorization": "Bearer s3cret"})) as admin_sse:
            ok = await admin_sse.call_tool("deploy_pipeline", {"name": "guarded", "files": adder_files()})
            assert ok.is_error is False, ok.content
        async with _client_with_token(server.mcp, "s3cret") as admin:
            assert (await admin.call_tool("guarded", {"a": 1, "b": 1})).content[0].text == "2"
            assert (await admin.call_tool("undeploy_pipeline", {"name": "guarded"})).is_error is False
        assert server.service.registry.get("guarded") is None


async def test_disabled_runtime_deploy_hides_and_refuses_the_deploy_tools(tmp_path):
    with running_server(tmp_path / "pipelines", disable_runtime_deploy=True) as server:
        async with Client(server.mcp) as client:
            names = tool_names(await client.list_tools())
            assert names == {"get_all_pipeline_statuses", "get_pipeline_status"}
            refused = await client.call_tool("deploy_pipeline", {"name": "nope", "files": adder_files()})
        assert refused.is_error is True and "disabled" in refused.content[0].text
        assert server.service.registry.get("nope") is None


async def test_dns_rebinding_is_refused_on_a_loopback_server(srv):
    async with httpx.AsyncClient(base_url=srv.base) as http:
        foreign = await http.post(
            "/mcp",
            headers={"Host": "evil.example:80", "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        )
        sse = await http.get("/sse", headers={"Origin": "http://evil.example"})
    assert foreign.status_code in (403, 421)
    assert sse.status_code == 403
