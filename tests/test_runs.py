"""The one run path (``PipelineService.run``): timeouts, detached threads, streams holding their
admission slot, client disconnects, and one error shape (logged once) on HTTP, OpenAI and MCP."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import httpx
import pytest
from conftest import FIXTURES, copy_pipelines, wait_until
from mcp import Client

RUNTIME = FIXTURES / "runtime"


def runtime_pipelines(dest: Path, *names: str) -> Path:
    return copy_pipelines(dest, *names, source=RUNTIME)


def sse_events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, str] = {}
        for line in block.splitlines():
            if ":" in line and not line.startswith(":"):
                key, _, value = line.partition(":")
                event[key] = value.lstrip(" ")
        if event:
            events.append(event)
    return events


# -- timeouts ----------------------------------------------------------------------------------------
async def test_sync_run_past_the_timeout_answers_504_and_its_thread_is_detached(app_client, pipelines_dir):
    client = await app_client(runtime_pipelines(pipelines_dir, "sleepy_sync"), request_timeout=0.3)
    r = await client.post("/sleepy_sync/run", json={"seconds": 2})
    assert r.status_code == 504, r.text
    body = r.json()
    assert body["pipeline"] == "sleepy_sync" and "sleepy_sync" in body["detail"]
    assert "0.3s" in body["detail"] and "traceback" not in body
    # The blocked thread cannot be interrupted: it is counted until it returns on its own.
    status = (await client.get("/status")).json()
    assert status["detached_runs"] == 1 and status["in_flight_runs"] == 1
    for _ in range(100):
        status = (await client.get("/status")).json()
        if status["detached_runs"] == 0:
            break
        await asyncio.sleep(0.05)
    assert status["detached_runs"] == 0 and status["in_flight_runs"] == 0
    # Fast runs still pass.
    assert (await client.post("/sleepy_sync/run", json={"text": "hi"})).json() == {"result": "hi"}


async def test_async_run_past_the_timeout_is_cancelled(app_client, pipelines_dir, tmp_path):
    client = await app_client(runtime_pipelines(pipelines_dir, "sleepy_async"), request_timeout=0.3)
    marker = tmp_path / "marker"
    r = await client.post("/sleepy_async/run", json={"seconds": 30, "marker": str(marker)})
    assert r.status_code == 504 and r.json()["pipeline"] == "sleepy_async"
    assert marker.read_text() == "cancelled"
    assert (await client.get("/status")).json()["detached_runs"] == 0


async def test_wrapper_request_timeout_overrides_the_setting(app_client, pipelines_dir):
    client = await app_client(runtime_pipelines(pipelines_dir, "quick_timeout", "sleepy_sync"))
    r = await client.post("/quick_timeout/run", json={"seconds": 1.5})
    assert r.status_code == 504 and "quick_timeout" in r.json()["detail"]
    assert (await client.post("/quick_timeout/run", json={})).status_code == 200
    # Without a setting, other pipelines have no timeout.
    assert (await client.post("/sleepy_sync/run", json={"seconds": 0.5})).status_code == 200


async def test_sse_stream_past_the_timeout_ends_with_its_error_event(app_client, pipelines_dir):
    client = await app_client(runtime_pipelines(pipelines_dir, "slow_sse"), request_timeout=0.5)
    r = await client.post("/slow_sse/run", json={"count": 100, "delay": 0.1})
    events = sse_events(r.text)
    assert 1 <= len(events) < 100
    assert events[-1]["event"] == "error"
    error = json.loads(events[-1]["data"])
    assert error["pipeline"] == "slow_sse" and "did not finish within 0.5s" in error["detail"]


def test_text_stream_past_the_timeout_is_cut_short_and_closed(live_app, pipelines_dir, tmp_path):
    server = live_app(runtime_pipelines(pipelines_dir, "slow_stream"), request_timeout=0.5)
    marker = tmp_path / "closed"
    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream(
            "POST",
            f"{server.url}/slow_stream/run",
            json={"count": 100, "delay": 0.1, "marker": str(marker)},
            timeout=30,
        ) as r:
            assert r.status_code == 200
            for text in r.iter_text():
                received.append(text)
    assert 0 < len("".join(received).split(";")) < 100
    wait_until(lambda: marker.exists(), timeout=15)  # the generator was closed
    wait_until(lambda: httpx.get(f"{server.url}/status").json()["in_flight_runs"] == 0, timeout=15)


# -- admission ---------------------------------------------------------------------------------------
def test_a_stream_holds_its_admission_slot_until_it_ends(live_app, pipelines_dir):
    server = live_app(
        runtime_pipelines(pipelines_dir, "slow_stream", "sleepy_sync"), thread_pool_size=1, max_queued_runs=0
    )
    with httpx.stream(
        "POST", f"{server.url}/slow_stream/run", json={"count": 20, "delay": 0.1}, timeout=30
    ) as r:
        chunks = r.iter_text()
        assert next(chunks)
        refused = httpx.post(f"{server.url}/sleepy_sync/run", json={}, timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "".join(chunks).count(";") >= 18
    wait_until(lambda: httpx.post(f"{server.url}/sleepy_sync/run", json={}).status_code == 200, timeout=15)


def test_sync_runs_use_more_threads_than_cores_by_default(live_app, pipelines_dir):
    """Blocked sync runs wait side by side: 20 runs of 4 s overlap (on a loaded machine the last
    requests may start a second or two after the first), not 20 / (cores + 4) at a time."""
    server = live_app(runtime_pipelines(pipelines_dir, "sleepy_sync"))
    service = server.extra["app"].state.service
    assert service.executor.max_threads >= 64
    results: list[int] = []

    def call() -> None:
        results.append(
            httpx.post(f"{server.url}/sleepy_sync/run", json={"seconds": 4}, timeout=60).status_code
        )

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    wait_until(lambda: service.executor.threads >= 20, timeout=30)
    for t in threads:
        t.join(60)
    assert results == [200] * 20


# -- disconnects -------------------------------------------------------------------------------------
def test_a_client_that_disconnects_cancels_its_async_run(live_app, pipelines_dir, tmp_path):
    server = live_app(runtime_pipelines(pipelines_dir, "sleepy_async"))
    marker = tmp_path / "marker"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/sleepy_async/run", json={"seconds": 60, "marker": str(marker)}, timeout=0.5)
    # Wait for the whole word: the file exists a moment before its text is written.
    wait_until(lambda: marker.exists() and marker.read_text() == "cancelled", timeout=15)


# -- one error path ----------------------------------------------------------------------------------
@pytest.fixture
def exploder(live_app, pipelines_dir):
    return live_app(runtime_pipelines(pipelines_dir, "exploder"))


async def test_the_same_failure_reads_the_same_on_every_surface_and_is_logged_once(exploder, caplog):
    message = "Pipeline 'exploder' failed in component 'exploder': "
    caplog.set_level(logging.INFO, logger="hayhooks")

    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "the fuse was lit" in r.getMessage()]

    async with httpx.AsyncClient(base_url=exploder.url, timeout=30) as client:
        r = await client.post("/exploder/run", json={"text": "x"})
        assert r.status_code == 500
        http = r.json()
        assert http["detail"].startswith(message) and http["component"] == "exploder"
        assert len(logged()) == 1 and logged()[0].exc_info  # the traceback goes to the log, once

        r = await client.post(
            "/v1/chat/completions", json={"model": "exploder", "messages": [{"role": "user", "content": "x"}]}
        )
        assert r.status_code == 500
        error = r.json()["error"]
        assert error["message"] == http["detail"] and error["component"] == "exploder"
        assert len(logged()) == 2

    async with Client(f"{exploder.url}/mcp") as mcp:
        result = await mcp.call_tool("exploder", {"text": "x"})
    assert result.is_error and result.content[0].text == http["detail"]
    assert len(logged()) == 3
    assert {r.getMessage().split(":")[0] for r in logged()} == {"run", "openai", "mcp"}


async def test_refusals_log_one_line_without_traceback(app_client, pipelines_dir, caplog):
    caplog.set_level(logging.INFO, logger="hayhooks")
    client = await app_client(
        runtime_pipelines(pipelines_dir, "sleepy_sync"), thread_pool_size=1, max_queued_runs=0
    )
    held = asyncio.create_task(client.post("/sleepy_sync/run", json={"seconds": 1}))
    await asyncio.sleep(0.3)
    refused = await client.post("/sleepy_sync/run", json={})
    assert refused.status_code == 503
    missing = await client.post("/nope/run", json={})
    assert missing.status_code == 404
    assert (await held).status_code == 200
    lines = [r for r in caplog.records if "busy" in r.getMessage() or "'nope'" in r.getMessage()]
    assert len(lines) == 2 and not any(r.exc_info for r in lines)


async def test_http_exception_raised_by_a_wrapper_keeps_its_status(app_client, pipelines_dir):
    folder = pipelines_dir / "refuses"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(
        "from fastapi import HTTPException\nfrom hayhooks import BasePipelineWrapper\n"
        "class PipelineWrapper(BasePipelineWrapper):\n"
        "    def setup(self): pass\n"
        "    def run_api(self) -> str:\n"
        "        raise HTTPException(status_code=418, detail={'why': 'teapot'})\n"
    )
    client = await app_client(pipelines_dir)
    r = await client.post("/refuses/run", json={})
    assert r.status_code == 418 and r.json()["detail"] == {"why": "teapot"} and r.json()["request_id"]


async def test_ready_answers_503_while_draining(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    assert (await client.get("/ready")).status_code == 200
    client.app.state.service.draining = True
    r = await client.get("/ready")
    assert r.status_code == 503 and r.json() == {"status": "draining"}


async def test_sse_stream_of_a_list_streams_its_items(app_client, pipelines_dir):
    folder = pipelines_dir / "sse_list"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(
        "from hayhooks import BasePipelineWrapper, SSEStream\n"
        "class PipelineWrapper(BasePipelineWrapper):\n"
        "    def setup(self): pass\n"
        "    def run_api(self):\n"
        "        return SSEStream(['a', {'event': 'done', 'data': 'bye'}])\n"
    )
    client = await app_client(pipelines_dir)
    r = await client.post("/sse_list/run", json={})
    assert r.headers["content-type"].startswith("text/event-stream")
    assert sse_events(r.text) == [{"data": "a"}, {"event": "done", "data": "bye"}]
