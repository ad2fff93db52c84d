"""``hayhooks execution run|list|get|cancel|resume|follow`` against a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import wait_until
from tests.e2e._server import run_cli

pytestmark = pytest.mark.e2e

DURABLE = Path(__file__).parent.parent / "fixtures" / "durable"
ENV = {"HAYHOOKS_DURABLE_POLL_INTERVAL_SECONDS": "0.1", "HAYHOOKS_DURABLE_WORKER_CONCURRENCY": "4"}


def cli(url: str, *args: str) -> Any:
    done = run_cli("execution", *args, "--url", url)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_execution_commands(hayhooks_server: Any, tmp_path: Path) -> None:
    pipelines = tmp_path / "pipelines"
    shutil.copytree(DURABLE / "durable_tasks", pipelines / "durable_tasks")
    server = hayhooks_server(pipelines, env=ENV)
    url = server.url

    started = json.loads(
        cli(url, "run", "durable_tasks", "--json", '{"mode": "approve", "topic": "CLI"}').stdout
    )
    execution_id = started["execution_id"]

    def waiting() -> bool:
        return json.loads(cli(url, "get", "durable_tasks", execution_id).stdout)["status"] == "waiting"

    wait_until(waiting, timeout=30, interval=0.2)
    listed = cli(url, "list", "durable_tasks", "--status", "waiting").stdout
    assert execution_id in listed and "1 of 1" in listed
    resumed = json.loads(
        cli(url, "resume", "durable_tasks", execution_id, "-p", "approved=true", "-p", "note=ok").stdout
    )
    assert resumed["status"] == "queued"
    followed = cli(url, "follow", "durable_tasks", execution_id)
    assert json.loads(followed.stdout)["approved"] is True and "[status] completed" in followed.stderr

    streamed = cli(url, "run", "durable_tasks", "-p", "mode=stream", "-p", "n=4", "--follow")
    tokens, _, result = streamed.stdout.partition("\n")
    assert tokens == "tok0 tok1 tok2 tok3 " and json.loads(result) == {"chunks": 4}
    assert streamed.stderr.startswith("execution ")

    loop = json.loads(cli(url, "run", "durable_tasks", "-p", "mode=loop", "-p", "n=1000").stdout)
    canceled = json.loads(cli(url, "cancel", "durable_tasks", loop["execution_id"]).stdout)
    assert canceled["cancel_requested"] is True
    gone = run_cli("execution", "follow", "durable_tasks", loop["execution_id"], "--url", url)
    assert gone.returncode != 0 and "canceled" in gone.stderr

    missing = run_cli("execution", "get", "durable_tasks", "nope", "--url", url)
    assert missing.returncode != 0 and "not found" in (missing.stderr + missing.stdout)


def test_idempotent_replay_and_last_event_id_across_two_workers(hayhooks_server: Any, tmp_path: Path) -> None:
    """Requests land on either worker of ``--workers 2``: both answer from the shared store."""
    pipelines = tmp_path / "pipelines"
    shutil.copytree(DURABLE / "durable_tasks", pipelines / "durable_tasks")
    url = hayhooks_server(pipelines, "--workers", "2", env=ENV).url
    args = ("run", "durable_tasks", "-p", "mode=stream", "-p", "n=5", "-k", "order-7")
    first = json.loads(cli(url, *args).stdout)
    ids = {json.loads(cli(url, *args).stdout)["execution_id"] for _ in range(4)}
    assert ids == {first["execution_id"]}
    location = first["links"]["self"]
    with httpx.Client(base_url=url, timeout=60) as client:
        wait_until(lambda: client.get(location).json()["status"] == "completed", timeout=30, interval=0.2)
        replay = client.post(
            "/durable_tasks/run-durable",
            json={"mode": "stream", "n": 5},
            headers={"Idempotency-Key": "order-7"},
        )
        assert replay.status_code == 200 and replay.headers["idempotent-replay"] == "true"
        full = client.get(f"{location}/stream").text
        ids_seen = [int(line[4:]) for line in full.splitlines() if line.startswith("id: ")]
        cut = ids_seen[len(ids_seen) // 2]
        rest = client.get(f"{location}/stream", headers={"Last-Event-ID": str(cut)}).text
        assert [int(line[4:]) for line in rest.splitlines() if line.startswith("id: ")] == [
            i for i in ids_seen if i > cut
        ]
