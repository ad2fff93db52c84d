"""``hayhooks mcp run`` (stdio and HTTP) and the mounted endpoint under ``hayhooks run --workers 2``,
as real subprocesses driven by the official ``mcp`` client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ToolsListChanged
from mcp_support import (
    ADDER,
    CORE,
    FIXTURES,
    HAYHOOKS,
    PIPELINE_TOOLS,
    WAIT,
    Notifications,
    env,
    mcp_run_http,
    mcp_run_http_process,
    tool_names,
)
from observability_support import value

pytestmark = pytest.mark.e2e


def pipelines(tmp_path: Path) -> Path:
    target = tmp_path / "pipelines"
    shutil.copytree(FIXTURES, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


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


# -- observability of the standalone HTTP server ---------------------------------------------------------
def _tagged_http_client(request_id: str, echoed: list[str], **headers: str) -> Any:
    """An MCP HTTP client that sends ``X-Request-ID`` and records what each response echoes."""
    import httpx2

    async def record(response: Any) -> None:
        echoed.append(response.headers.get("x-request-id", ""))

    return httpx2.AsyncClient(
        headers={"X-Request-ID": request_id, **headers},
        timeout=httpx2.Timeout(60, read=300),
        event_hooks={"response": [record]},
    )


async def test_mcp_run_http_counts_tool_runs_in_metrics_of_its_own(tmp_path, hayhooks_server):
    """Tool runs counted under surface "mcp" on the standalone server's /metrics, exactly; a
    `hayhooks run` on the same directory counts its own runs apart (no mixing either way); request
    ids echoed and in the JSON logs and /traces."""
    folder = pipelines(tmp_path)
    server = hayhooks_server(folder)
    inherited = tmp_path / "inherited-metrics"  # a parent's multiprocess dir must stay unused
    inherited.mkdir()
    own_tmp = tmp_path / "tmp"  # where the server's own metrics directory is created
    own_tmp.mkdir()
    calls = 3
    echoed: list[str] = []
    log_path = tmp_path / "mcp-run.log"
    with mcp_run_http(
        folder,
        log_path,
        HAYHOOKS_LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(inherited),
        TMPDIR=str(own_tmp),
    ) as base:
        async with Client(
            streamable_http_client(f"{base}/mcp", http_client=_tagged_http_client("mcp-obs-1", echoed))
        ) as client:
            for i in range(calls):
                result = await client.call_tool("shout", {"text": f"x{i}"})
                assert result.is_error is False, result.content
            failed = await client.call_tool("broken_tool", {"n": 0})
            assert failed.is_error is True
        assert echoed and set(echoed) == {"mcp-obs-1"}
        async with httpx.AsyncClient(timeout=60) as http:
            # A run through the main server: counted there only.
            response = await http.post(f"{server.url}/shout/run", json={"text": "main"})
            assert response.status_code == 200, response.text
            scrape = await http.get(f"{base}/metrics", headers={"X-Request-ID": "scrape-1"})
            main_scrape = (await http.get(f"{server.url}/metrics")).text
            traces = (await http.get(f"{base}/traces", params={"limit": 50})).json()
        own_dirs = [p for p in own_tmp.iterdir() if p.name.startswith("hayhooks-metrics-")]
        assert len(own_dirs) == 1 and list(own_dirs[0].glob("*.db"))
    assert scrape.status_code == 200, scrape.text
    assert scrape.headers["x-request-id"] == "scrape-1"
    text = scrape.text
    assert value(text, "hayhooks_pipeline_runs_total", pipeline="shout", surface="mcp", outcome="ok") == calls
    assert value(text, "hayhooks_requests_total", pipeline="shout", surface="mcp", code="200") == calls
    assert (
        value(text, "hayhooks_pipeline_runs_total", pipeline="broken_tool", surface="mcp", outcome="error")
        == 1
    )
    assert value(text, "hayhooks_pipeline_runs_total", surface="run") == 0  # the main server's run
    assert value(main_scrape, "hayhooks_pipeline_runs_total", pipeline="shout", surface="run") == 1
    assert value(main_scrape, "hayhooks_pipeline_runs_total", surface="mcp") == 0
    assert list(inherited.iterdir()) == []
    assert list(own_tmp.iterdir()) == []  # removed when the server stopped
    mcp_runs = [r for r in traces["runs"] if r["surface"] == "mcp"]
    assert [r["request_id"] for r in mcp_runs if r["pipeline"] == "shout"] == ["mcp-obs-1"] * calls
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert any(
        r["logger"] == "uvicorn.access" and r["path"] == "/mcp" and r["request_id"] == "mcp-obs-1"
        for r in records
    )
    assert any(r["logger"] == "hayhooks" and r["request_id"] == "mcp-obs-1" for r in records)


async def test_mcp_run_http_metrics_need_an_api_key_when_keys_are_set(tmp_path):
    echoed: list[str] = []
    with mcp_run_http(pipelines(tmp_path), tmp_path / "mcp-run.log", HAYHOOKS_API_KEYS="k-123") as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            refused = await http.get("/metrics")
            assert refused.status_code == 401, refused.text
            assert "API key" in refused.json()["detail"]
            assert (await http.get("/metrics", headers={"X-API-Key": "wrong"})).status_code == 401
            assert (await http.get("/status")).status_code == 200  # the 2.x probe stays open
        tagged = _tagged_http_client("keyed-1", echoed, Authorization="Bearer k-123")
        async with Client(streamable_http_client(f"{base}/mcp", http_client=tagged)) as client:
            assert (await client.call_tool("shout", {"text": "k"})).is_error is False
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            allowed = await http.get("/metrics", headers={"Authorization": "Bearer k-123"})
        # `hayhooks top` reads the standalone server too (its worker table from /metrics).
        with anyio.fail_after(60):
            top = await anyio.run_process(
                [HAYHOOKS, "top", "--url", base, "--token", "k-123", "--json", "--interval", "0.2"],
                env=env(),
                check=False,
            )
    assert allowed.status_code == 200, allowed.text
    assert top.returncode == 0, top.stderr.decode()
    snap = json.loads(top.stdout)
    assert [(p["name"], p["requests"], p["errors"]) for p in snap["pipelines"]] == [("shout", 1, 0)]
    assert snap["generation"] is not None and len(snap["workers"]) == 1
    assert snap["workers"][0]["in_sync"] is True
    assert (
        value(allowed.text, "hayhooks_pipeline_runs_total", pipeline="shout", surface="mcp", outcome="ok")
        == 1
    )


async def test_mcp_run_http_metrics_and_traces_can_be_turned_off(tmp_path):
    with mcp_run_http(
        pipelines(tmp_path),
        tmp_path / "mcp-run.log",
        HAYHOOKS_METRICS_ENABLED="false",
        HAYHOOKS_RECENT_RUNS="0",
    ) as base:
        async with Client(f"{base}/mcp") as client:
            assert (await client.call_tool("shout", {"text": "off"})).is_error is False
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            metrics = await http.get("/metrics", headers={"X-Request-ID": "off-1"})
            traces = await http.get("/traces")
    assert metrics.status_code == 501
    assert metrics.json() == {
        "detail": "Metrics are turned off (HAYHOOKS_METRICS_ENABLED=false)",
        "request_id": "off-1",
    }
    assert traces.status_code == 501 and "HAYHOOKS_RECENT_RUNS" in traces.json()["detail"]


async def test_mcp_run_http_exports_tool_runs_over_otlp(tmp_path):
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, a tool call gives a server span (continuing the
    caller's traceparent) with a hayhooks.pipeline.run span of surface "mcp" (and Haystack's) below."""
    from test_otlp_export import PARENT_ID, TRACE_ID, Receiver

    receiver = Receiver()
    echoed: list[str] = []
    try:
        with mcp_run_http(
            pipelines(tmp_path),
            tmp_path / "mcp-run.log",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_BSP_SCHEDULE_DELAY="200",
        ) as base:
            traced = _tagged_http_client("otel-1", echoed, traceparent=f"00-{TRACE_ID}-{PARENT_ID}-01")
            async with Client(streamable_http_client(f"{base}/mcp", http_client=traced)) as client:
                assert (await client.call_tool("shout", {"text": "t"})).is_error is False
            with anyio.fail_after(30):
                while not any(s.name == "hayhooks.pipeline.run" for s in receiver.spans):
                    await anyio.sleep(0.2)
    finally:
        receiver.close()
    (run_span,) = [s for s in receiver.spans if s.name == "hayhooks.pipeline.run"]
    attributes = {a.key: a.value.string_value for a in run_span.attributes}
    assert attributes["hayhooks.pipeline"] == "shout" and attributes["hayhooks.surface"] == "mcp"
    assert run_span.trace_id.hex() == TRACE_ID
    spans = {s.span_id: s for s in receiver.spans}
    # Our server span continues the caller's trace; the run span is below it (under the MCP SDK's
    # own "tools/call shout" span, when the SDK records one).
    ancestors = []
    span = run_span
    while span.parent_span_id in spans:
        span = spans[span.parent_span_id]
        ancestors.append(span.name)
    assert ancestors[-1] == "POST /mcp" and span.parent_span_id.hex() == PARENT_ID, ancestors
    assert any(
        s.name == "haystack.pipeline.run" and s.parent_span_id == run_span.span_id for s in spans.values()
    )


def test_mcp_run_http_drains_on_sigterm_with_ready_at_503(tmp_path):
    """The SIGTERM drain of `hayhooks run`: /ready answers 503 at once, tools keep being served for
    HAYHOOKS_SHUTDOWN_DELAY, then the server exits 0."""
    log = tmp_path / "mcp-run.log"
    with mcp_run_http_process(pipelines(tmp_path), log, HAYHOOKS_SHUTDOWN_DELAY="3") as (base, proc):
        assert httpx.get(f"{base}/ready").json()["status"] == "ready"
        os.kill(proc.pid, signal.SIGTERM)  # to the main process, as docker / kubernetes do
        deadline = time.monotonic() + WAIT
        while httpx.get(f"{base}/ready", timeout=5).status_code != 503:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert httpx.get(f"{base}/ready").json() == {"status": "draining"}
        assert httpx.get(f"{base}/health").status_code == 200  # still accepting during the delay
        assert proc.wait(WAIT) == 0, log.read_text()


def test_mcp_run_http_closes_a_slow_client_after_the_header_read_timeout(tmp_path):
    log = tmp_path / "mcp-run.log"
    with mcp_run_http(pipelines(tmp_path), log, HAYHOOKS_HEADER_READ_TIMEOUT="1") as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(b"POST /mc")  # half a request line, then nothing
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the server, not by our 20 s socket timeout
            assert time.monotonic() - started < 15
        assert httpx.get(f"{base}/health").status_code == 200
