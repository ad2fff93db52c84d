"""GET /traces: recent runs with per-component timings, guarded like the 2.x route."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import SAMPLE_PIPELINES


async def test_recent_runs_with_component_timings(app_client, pipelines_dir):
    shutil.copytree(SAMPLE_PIPELINES / "echo", pipelines_dir / "t_echo")
    shutil.copytree(SAMPLE_PIPELINES / "fails_at_run", pipelines_dir / "t_fails")
    client = await app_client(pipelines_dir)
    for i in range(3):
        r = await client.post("/t_echo/run", json={"name": str(i)}, headers={"X-Request-ID": f"trace-{i}"})
        assert r.status_code == 200
    assert (await client.post("/t_fails/run", json={"text": "x"})).status_code == 500
    r = await client.get("/traces", params={"limit": 3})
    assert r.status_code == 200, r.text
    runs = r.json()["runs"]
    assert len(runs) == 3
    assert (
        runs[0]["pipeline"] == "t_fails" and runs[0]["outcome"] == "error" and runs[0]["status_code"] == 500
    )
    assert "exploder" in runs[0]["error"].lower()
    assert [c["name"] for c in runs[0]["components"]] == ["exploder"]
    assert runs[0]["components"][0]["error"]
    echo = runs[1]
    assert echo["request_id"] == "trace-2" and echo["outcome"] == "ok" and echo["surface"] == "run"
    (component,) = echo["components"]
    assert component["name"] == "greeter" and component["type"] == "PromptBuilder"
    assert (
        0 <= component["start_ms"] <= echo["duration_ms"]
        and 0 <= component["duration_ms"] <= echo["duration_ms"]
    )
    assert echo["worker"] == r.json()["worker"]


async def test_traces_need_the_tracing_or_admin_token(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, tracing_token="t-secret", admin_token="a-secret")
    assert (await client.get("/traces")).status_code == 401
    assert (await client.get("/traces", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get("/traces", headers={"Authorization": "Bearer t-secret"})).status_code == 200
    assert (await client.get("/traces", headers={"Authorization": "Bearer a-secret"})).status_code == 200


async def test_traces_without_tokens_only_on_loopback(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, host="0.0.0.0")
    r = await client.get("/traces")
    assert r.status_code == 403 and "HAYHOOKS_TRACING_TOKEN" in r.json()["detail"]


async def test_recent_runs_can_be_turned_off(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, recent_runs=0)
    assert (await client.get("/traces")).status_code == 501


async def test_traces_without_tokens_refuse_proxied_or_rebound_requests(app_client, pipelines_dir):
    """Loopback-bound is not enough: like deploys, only a genuinely local request reads /traces."""
    client = await app_client(pipelines_dir)
    assert (await client.get("/traces")).status_code == 200
    assert (await client.get("/traces", headers={"X-Forwarded-For": "203.0.113.9"})).status_code == 403
    assert (await client.get("/traces", headers={"Host": "evil.example"})).status_code == 403
    assert (await client.get("/traces", headers={"Origin": "http://evil.example"})).status_code == 403


async def test_a_sync_streaming_generator_run_records_its_components(app_client, pipelines_dir):
    """streaming_generator drives the pipeline on a background loop thread: its component timings
    still land in the run's record (the run's context goes with the pipeline onto that loop)."""
    fixtures = Path(__file__).parent / "fixtures" / "openai_pipelines"
    shutil.copytree(fixtures / "chat_sync", pipelines_dir / "chat_sync")
    client = await app_client(pipelines_dir, additional_python_path=str(Path(__file__).parent))
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "chat_sync", "messages": [{"role": "user", "content": "Ada"}], "stream": True},
    )
    assert r.status_code == 200 and "[DONE]" in r.text
    runs = (await client.get("/traces", params={"limit": 1})).json()["runs"]
    assert runs[0]["pipeline"] == "chat_sync" and runs[0]["outcome"] == "ok"
    names = [c["name"] for c in runs[0]["components"]]
    assert "prompt" in names and "llm" in names, runs[0]
