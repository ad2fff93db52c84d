"""The durable routes on an in-process app: real pipelines, the real SQLite store and worker."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

DURABLE = Path(__file__).parent / "fixtures" / "durable"
FAST = {
    "durable_poll_interval_seconds": 0.05,
    "durable_lease_duration_ms": 2000,
    "durable_worker_concurrency": 4,
}


def with_durable(pipelines_dir: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(DURABLE / name, pipelines_dir / name)
    return pipelines_dir


async def wait_status(client: httpx.AsyncClient, location: str, *statuses: str, timeout: float = 30) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    body: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        body = (await client.get(location)).json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution never became {statuses}: {body}")


async def test_run_durable_checkpointed_pipeline(
    app_client: Any, pipelines_dir: Path, tmp_path: Path
) -> None:
    client = await app_client(with_durable(pipelines_dir, "durable_steps"), **FAST)
    log = tmp_path / "effects.log"
    response = await client.post(
        "/durable_steps/run-durable", json={"value": 1, "log": str(log), "tag": "t1"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] in ("queued", "running") and response.headers["location"] == body["links"]["self"]
    done = await wait_status(client, response.headers["location"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["result"] == {"value": 112, "tag": "t1", "attempt": 1}
    assert log.read_text().split("\n")[:3] == ["t1 a", "t1 b", "t1 c"]
    assert done["revision"] == "steps-v1" and done["started_at"] and done["finished_at"]


async def test_validation_not_found_not_supported_and_size_cap(app_client: Any, pipelines_dir: Path) -> None:
    from tests.conftest import copy_pipelines

    copy_pipelines(pipelines_dir, "echo")
    client = await app_client(
        with_durable(pipelines_dir, "durable_tasks"), durable_max_payload_bytes=2048, **FAST
    )
    bad = await client.post("/durable_tasks/run-durable", json={"mode": "nope"})
    assert bad.status_code == 422 and "detail" in bad.json()
    assert (await client.post("/missing/run-durable", json={})).status_code == 404
    assert (await client.post("/echo/run-durable", json={"text": "x"})).status_code == 501
    big = await client.post("/durable_tasks/run-durable", json={"mode": "loop", "topic": "x" * 5000})
    assert big.status_code == 413 and "durable_max_payload_bytes" in big.json()["detail"]
    assert (await client.get("/durable_tasks/executions/nope")).status_code == 404


async def test_idempotent_submit_and_replay(app_client: Any, pipelines_dir: Path) -> None:
    client = await app_client(with_durable(pipelines_dir, "durable_tasks"), **FAST)
    body = {"mode": "loop", "n": 2}
    first = await client.post("/durable_tasks/run-durable", json=body, headers={"Idempotency-Key": "k-1"})
    again = await client.post("/durable_tasks/run-durable", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 202 and again.json()["execution_id"] == first.json()["execution_id"]
    await wait_status(client, first.headers["location"], "completed")
    replay = await client.post("/durable_tasks/run-durable", json=body, headers={"Idempotency-Key": "k-1"})
    assert replay.status_code == 200 and replay.headers["idempotent-replay"] == "true"
    assert replay.json()["result"] == {"steps": 2}
    conflict = await client.post(
        "/durable_tasks/run-durable", json={"mode": "loop", "n": 3}, headers={"Idempotency-Key": "k-1"}
    )
    assert conflict.status_code == 409
    listed = (await client.get("/durable_tasks/executions", params={"status": "completed"})).json()
    assert listed["total"] == 1 and listed["executions"][0]["execution_id"] == first.json()["execution_id"]
    assert (await client.get("/durable_tasks/executions", params={"status": "bogus"})).status_code == 422


async def test_suspend_for_approval_then_resume(app_client: Any, pipelines_dir: Path) -> None:
    client = await app_client(with_durable(pipelines_dir, "durable_tasks"), **FAST)
    started = await client.post("/durable_tasks/run-durable", json={"mode": "approve", "topic": "X"})
    location = started.headers["location"]
    waiting = await wait_status(client, location, "waiting")
    assert waiting["waiting"]["reason"] == "Approve the draft"
    assert waiting["waiting"]["data"] == {"draft": "A draft about X"}
    assert waiting["progress"]["message"] == "drafted"
    invalid = await client.post(f"{location}/resume", json={"approved": "maybe"})
    assert invalid.status_code == 422
    resumed = await client.post(f"{location}/resume", json={"approved": True, "note": "ship it"})
    assert resumed.status_code == 202
    done = await wait_status(client, location, "completed")
    # the draft step was checkpointed: the resumed attempt did not draft again
    assert done["result"] == {"draft": "A draft about X", "approved": True, "note": "ship it", "drafts": 1}
    assert (await client.post(f"{location}/resume", json={"approved": True})).status_code == 409


async def test_cancel_running_and_failure(app_client: Any, pipelines_dir: Path) -> None:
    client = await app_client(with_durable(pipelines_dir, "durable_tasks"), **FAST)
    started = await client.post("/durable_tasks/run-durable", json={"mode": "loop", "n": 500})
    location = started.headers["location"]
    await wait_status(client, location, "running")
    canceled = await client.post(f"{location}/cancel")
    assert canceled.status_code == 200 and canceled.json()["cancel_requested"]
    done = await wait_status(client, location, "canceled")
    assert done["result"] is None
    failed = await client.post("/durable_tasks/run-durable", json={"mode": "fail", "topic": "T"})
    body = await wait_status(client, failed.headers["location"], "failed")
    assert body["error"] == {"type": "ValueError", "message": "boom on T"}


async def test_application_retries_with_budget(app_client: Any, pipelines_dir: Path) -> None:
    client = await app_client(
        with_durable(pipelines_dir, "durable_tasks"), durable_max_application_retries=2, **FAST
    )
    ok = await client.post("/durable_tasks/run-durable", json={"mode": "retry", "n": 2})
    assert (await wait_status(client, ok.headers["location"], "completed"))["result"] == {"retries": 2}
    exhausted = await client.post("/durable_tasks/run-durable", json={"mode": "retry", "n": 5})
    body = await wait_status(client, exhausted.headers["location"], "failed")
    assert body["application_retries"] == 2 and "durable_max_application_retries" in body["error"]["message"]


def _parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":")
        )
        if "id" in fields:
            events.append(
                {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
            )
    return events


async def test_stream_and_last_event_id(app_client: Any, pipelines_dir: Path) -> None:
    client = await app_client(with_durable(pipelines_dir, "durable_tasks"), **FAST)
    started = await client.post("/durable_tasks/run-durable", json={"mode": "stream", "n": 6})
    location = started.headers["location"]
    full = _parse_sse((await client.get(f"{location}/stream")).text)
    chunks = [e["data"] for e in full if e["event"] == "chunk"]
    assert chunks == [f"tok{i} " for i in range(6)]
    assert full[-1]["event"] == "status" and full[-1]["data"]["status"] == "completed"
    ids = [e["id"] for e in full]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    cut = next(e["id"] for e in full if e["data"] == "tok2 ")
    rest = _parse_sse((await client.get(f"{location}/stream", headers={"Last-Event-ID": str(cut)})).text)
    assert [e["id"] for e in rest] == [i for i in ids if i > cut]


async def test_status_and_openapi_show_durable(app_client: Any, pipelines_dir: Path) -> None:
    client = await app_client(with_durable(pipelines_dir, "durable_tasks"), **FAST)
    started = await client.post("/durable_tasks/run-durable", json={"mode": "loop", "n": 1})
    await wait_status(client, started.headers["location"], "completed")
    status = (await client.get("/status")).json()
    assert status["durable"]["store"] == "sqlite"
    assert status["durable"]["executions"]["completed"] == 1
    assert status["durable"]["worker"]["counters"]["completed"] == 1
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/{name}/run-durable" in paths and "/{name}/executions/{execution_id}/stream" in paths
    own = paths["/durable_tasks/run-durable"]["post"]
    ref = own["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/durable_tasks.TaskRequest")  # filed under its pipeline, like nested models


@pytest.mark.parametrize("revision", ["tasks-v2"])
async def test_a_new_revision_does_not_resume_old_executions(
    app_client: Any, pipelines_dir: Path, revision: str
) -> None:
    """An execution waiting on revision 1 finishes on revision 1's kept code after a redeploy."""
    client = await app_client(with_durable(pipelines_dir, "durable_tasks"), **FAST)
    started = await client.post("/durable_tasks/run-durable", json={"mode": "approve", "topic": "R"})
    location = started.headers["location"]
    await wait_status(client, location, "waiting")
    source = (pipelines_dir / "durable_tasks" / "pipeline_wrapper.py").read_text()
    new_source = source.replace('durable_revision = "tasks-v1"', f'durable_revision = "{revision}"').replace(
        '"approved": approval.approved', '"approved": "v2 code"'
    )
    deployed = await client.post(
        "/deploy-files",
        json={"name": "durable_tasks", "files": {"pipeline_wrapper.py": new_source}, "overwrite": True},
    )
    assert deployed.status_code == 200, deployed.text
    await client.post(f"{location}/resume", json={"approved": True})
    done = await wait_status(client, location, "completed")
    assert done["revision"] == "tasks-v1" and done["result"]["approved"] is True
    fresh = await client.post("/durable_tasks/run-durable", json={"mode": "approve", "topic": "N"})
    assert fresh.json()["revision"] == revision


async def test_executions_of_an_undeployed_pipeline_wait_with_a_reason_until_it_returns(
    live_app: Any, pipelines_dir: Path
) -> None:
    """Undeploying leaves unfinished executions queued, never failed: the execution and /status say
    why they wait; a redeploy of the name picks them up."""
    with_durable(pipelines_dir, "durable_tasks")
    files = {"pipeline_wrapper.py": (pipelines_dir / "durable_tasks" / "pipeline_wrapper.py").read_text()}
    server = live_app(pipelines_dir, **{**FAST, "durable_worker_concurrency": 1})
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        busy = await client.post("/durable_tasks/run-durable", json={"mode": "loop", "n": 600})
        await wait_status(client, busy.headers["location"], "running")
        queued = await client.post("/durable_tasks/run-durable", json={"mode": "loop", "n": 1})
        location = queued.headers["location"]
        body = (await client.get(location)).json()
        assert body["status"] == "queued" and body["pending_reason"] is None  # just waiting for a worker
        assert (await client.post("/undeploy/durable_tasks")).status_code == 200
        await client.post(f"{busy.headers['location']}/cancel")
        await wait_status(client, busy.headers["location"], "canceled")
        await asyncio.sleep(0.5)  # several claim polls: nothing takes it
        body = (await client.get(location)).json()
        assert body["status"] == "queued", body
        assert "pipeline 'durable_tasks' is not deployed" in body["pending_reason"]
        assert "deployed again" in body["pending_reason"]
        listed = (await client.get("/durable_tasks/executions", params={"status": "queued"})).json()
        assert listed["executions"][0]["pending_reason"] == body["pending_reason"]
        status = (await client.get("/status")).json()
        assert status["durable"]["waiting_for_deploy"] == {"durable_tasks": 1}

        deployed = await client.post("/deploy-files", json={"name": "durable_tasks", "files": files})
        assert deployed.status_code == 200, deployed.text
        done = await wait_status(client, location, "completed", "failed")
        assert done["status"] == "completed" and done["result"] == {"steps": 1}, done
        assert done["pending_reason"] is None
        assert (await client.get("/status")).json()["durable"]["waiting_for_deploy"] == {}
