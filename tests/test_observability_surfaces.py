"""Runs through the OpenAI-compatible API and MCP tools are counted under their own surface."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
from mcp import Client
from observability_support import value

TESTS = Path(__file__).parent


def _metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=30).text


def test_openai_and_mcp_runs_are_counted_per_surface(live_app, pipelines_dir):
    import anyio

    shutil.copytree(TESTS / "fixtures" / "openai_pipelines" / "chat_text", pipelines_dir / "s_chat")
    shutil.copytree(TESTS / "fixtures" / "mcp_pipelines" / "stream", pipelines_dir / "s_stream")
    server = live_app(pipelines_dir)
    before = _metrics(server.url)
    r = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "s_chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    missing = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "s_chat"}, timeout=30)
    assert missing.status_code == 400
    assert missing.json()["error"]["request_id"] == missing.headers["x-request-id"]

    async def call_tool() -> str:
        async with Client(f"{server.url}/mcp") as client:
            result = await client.call_tool("s_stream", {"text": "one two three"})
            assert result.is_error is False
            return result.content[0].text

    assert anyio.run(call_tool).split() == ["one", "two", "three"]
    after = _metrics(server.url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("hayhooks_requests_total", pipeline="s_chat", surface="openai", code="200") == 1
    assert (
        delta("hayhooks_requests_total", pipeline="s_chat", surface="openai", code="400") == 0
    )  # no model lookup yet
    assert delta("hayhooks_pipeline_runs_total", pipeline="s_chat", surface="openai", outcome="ok") == 1
    assert delta("hayhooks_requests_total", pipeline="s_stream", surface="mcp", code="200") == 1
    assert delta("hayhooks_pipeline_runs_total", pipeline="s_stream", surface="mcp", outcome="ok") == 1
    assert delta("hayhooks_stream_chunks_total", pipeline="s_stream", surface="mcp") == 3
    assert value(after, "hayhooks_runs_in_flight", pipeline="s_stream") == 0
