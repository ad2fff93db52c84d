"""Many workers and many instances agree: a deploy through any of them is served by all of them
before the call returns (issue 3). Real ``hayhooks run --workers 2`` subprocesses, real HTTP, a
fresh connection per request so the kernel spreads requests over the workers."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time

import httpx
import pytest
from conftest import wait_until

pytestmark = pytest.mark.e2e


def whoami(version: str, delay: float = 0.0) -> dict[str, str]:
    return {
        "pipeline_wrapper.py": (
            "import os, time\nfrom hayhooks import BasePipelineWrapper\n"
            "class PipelineWrapper(BasePipelineWrapper):\n"
            "    def setup(self) -> None:\n        pass\n"
            "    def run_api(self) -> dict:\n"
            f"        time.sleep({delay})\n"
            f"        return {{'pid': os.getpid(), 'version': {version!r}}}\n"
        )
    }


# No keep-alive: every request opens its own connection, as many independent clients would.
_CLIENT = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def fresh(method: str, url: str, **kwargs) -> httpx.Response:
    return _CLIENT.request(method, url, headers={"connection": "close"}, **kwargs)


def spread(method: str, url: str, count: int, **kwargs) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: fresh(method, url, **kwargs), range(count)))


def live_workers(url: str, expected: int) -> list[dict]:
    return wait_until(
        lambda: (
            (w := fresh("GET", f"{url}/status").json()["workers"])
            and len(w) == expected
            and all(x["in_sync"] for x in w)
            and w
        ),
        timeout=60,
    )


def deploy(url: str, name: str, files: dict[str, str], **extra) -> httpx.Response:
    return fresh("POST", f"{url}/deploy-files", json={"name": name, "files": files, **extra})


def test_deploy_and_undeploy_reach_every_worker(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2")
    workers = live_workers(server.url, 2)
    worker_pids = {int(w["id"].rsplit("-", 1)[1]) for w in workers}

    r = deploy(server.url, "who", whoami("v1"))
    assert r.status_code == 200, r.text
    assert r.json()["workers"] == 2 and r.json()["lagging"] == []

    responses = spread("POST", f"{server.url}/who/run", 60, json={})
    for _ in range(5):  # more samples only if the kernel happened to favour one worker
        if len({r.json()["result"]["pid"] for r in responses if r.status_code == 200}) == 2:
            break
        responses += spread("POST", f"{server.url}/who/run", 40, json={})
    assert {r.status_code for r in responses} == {200}
    served_by = {r.json()["result"]["pid"] for r in responses}
    assert served_by <= worker_pids
    assert len(served_by) == 2, "requests should have reached both workers"

    # Sample /status until both workers have answered (the kernel picks who accepts a connection).
    statuses: list[dict] = []
    for _ in range(10):
        statuses += [r.json() for r in spread("GET", f"{server.url}/status", 20)]
        if {s["worker"] for s in statuses} == {w["id"] for w in workers}:
            break
    assert {s["worker"] for s in statuses} == {w["id"] for w in workers}
    assert all(s["pipelines"] == ["who"] and s["generation"] == statuses[0]["generation"] for s in statuses)
    schemas = spread("GET", f"{server.url}/openapi.json", 20)
    assert all("/who/run" in s.json()["paths"] for s in schemas)
    assert len({s.text for s in schemas}) == 1

    # A chat pipeline appears in /v1/models on every worker too.
    chat = {
        "pipeline_wrapper.py": whoami("chat")["pipeline_wrapper.py"]
        + (
            "    def run_chat_completion(self, model: str, messages: list, body: dict) -> str:\n"
            "        return 'hi'\n"
        )
    }
    assert deploy(server.url, "chatty", chat).status_code == 200
    models = spread("GET", f"{server.url}/v1/models", 20)
    assert all([m["id"] for m in r.json()["data"]] == ["chatty"] for r in models)

    r = fresh("POST", f"{server.url}/undeploy/who")
    assert r.status_code == 200, r.text
    assert fresh("POST", f"{server.url}/undeploy/chatty").status_code == 200
    assert all(r.json()["data"] == [] for r in spread("GET", f"{server.url}/v1/models", 20))
    gone = spread("POST", f"{server.url}/who/run", 50, json={})
    assert [r.status_code for r in gone] == [404] * 50
    assert all("/who/run" not in s.json()["paths"] for s in spread("GET", f"{server.url}/openapi.json", 20))


def test_overwrite_under_load_loses_nothing(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2")
    live_workers(server.url, 2)
    assert deploy(server.url, "busy", whoami("old", delay=0.02)).status_code == 200

    results: list[tuple[float, int, str]] = []  # (when the request was sent, status, version)
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            r = fresh("POST", f"{server.url}/busy/run", json={})
            results.append(
                (sent, r.status_code, r.json()["result"]["version"] if r.status_code == 200 else r.text)
            )

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(results) >= 20, timeout=30)
        r = deploy(server.url, "busy", whoami("new", delay=0.02), overwrite=True)
        returned = time.monotonic()
        assert r.status_code == 200, r.text
        wait_until(lambda: sum(1 for sent, _, _ in results if sent > returned) >= 40, timeout=30)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert [x for x in results if x[1] != 200] == []
    assert {v for _, _, v in results} == {"old", "new"}
    # Every request sent after the deploy call returned is served the new version (requests
    # already in flight when it returned may finish on the old one).
    after = [v for sent, _, v in results if sent > returned]
    assert len(after) >= 40 and set(after) == {"new"}


def test_failed_overwrite_keeps_old_version_on_every_worker(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2")
    live_workers(server.url, 2)
    assert deploy(server.url, "stable", whoami("good")).status_code == 200
    broken = {"pipeline_wrapper.py": "raise RuntimeError('broken on import')\n"}
    r = deploy(server.url, "stable", broken, overwrite=True)
    assert r.status_code == 422 and "broken on import" in r.json()["detail"]
    responses = spread("POST", f"{server.url}/stable/run", 40, json={})
    assert {(r.status_code, r.json()["result"]["version"]) for r in responses} == {(200, "good")}


def test_killed_worker_does_not_hang_a_deploy_and_its_replacement_catches_up(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2", env={"HAYHOOKS_DEPLOY_SYNC_TIMEOUT": "20"})
    workers = live_workers(server.url, 2)
    victim = int(workers[0]["id"].rsplit("-", 1)[1])
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    r = deploy(server.url, "after_kill", whoami("v1"))
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert elapsed < 20, "a dead worker must not block the deploy until the timeout"
    # uvicorn's supervisor replaces the dead worker; the new one loads the current state.
    workers = wait_until(
        lambda: (
            (w := fresh("GET", f"{server.url}/status").json()["workers"])
            and len(w) == 2
            and all(x["in_sync"] and x["pipelines"] == 1 for x in w)
            and victim not in {int(x["id"].rsplit("-", 1)[1]) for x in w}
            and w
        ),
        timeout=60,
    )
    responses = spread("POST", f"{server.url}/after_kill/run", 40, json={})
    assert {r.status_code for r in responses} == {200}


def test_two_instances_sharing_a_directory_converge(hayhooks_server, pipelines_dir):
    a = hayhooks_server(pipelines_dir)
    b = hayhooks_server(pipelines_dir)
    wait_until(lambda: len(fresh("GET", f"{a.url}/status").json()["workers"]) == 2, timeout=30)

    r = deploy(a.url, "shared", whoami("v1"))
    assert r.status_code == 200 and r.json()["workers"] == 2, r.text
    # The deploy waited for both instances, so B serves it the moment A answered.
    assert fresh("POST", f"{b.url}/shared/run", json={}).status_code == 200
    assert "/shared/run" in fresh("GET", f"{b.url}/openapi.json").json()["paths"]

    r = fresh("POST", f"{b.url}/undeploy/shared")
    assert r.status_code == 200
    assert fresh("POST", f"{a.url}/shared/run", json={}).status_code == 404
    assert (
        fresh("GET", f"{a.url}/status").json()["pipelines"]
        == fresh("GET", f"{b.url}/status").json()["pipelines"]
        == []
    )


def test_hand_copied_pipeline_reaches_instances_by_polling(hayhooks_server, pipelines_dir):
    a = hayhooks_server(pipelines_dir, env={"HAYHOOKS_POLL_INTERVAL": "0.5"})
    b = hayhooks_server(pipelines_dir, env={"HAYHOOKS_POLL_INTERVAL": "0.5"})
    folder = pipelines_dir / "copied"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(whoami("by-hand")["pipeline_wrapper.py"])
    for server in (a, b):
        wait_until(
            lambda server=server: fresh("POST", f"{server.url}/copied/run", json={}).status_code == 200,
            timeout=2.5,
            interval=0.1,
        )


def test_reload_mode_picks_up_edits_quickly(hayhooks_server, pipelines_dir):
    folder = pipelines_dir / "edited"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(whoami("v1")["pipeline_wrapper.py"])
    server = hayhooks_server(pipelines_dir, "--reload", env={"HAYHOOKS_POLL_INTERVAL": "30"})
    assert fresh("POST", f"{server.url}/edited/run", json={}).json()["result"]["version"] == "v1"
    (folder / "pipeline_wrapper.py").write_text(whoami("v2-edited")["pipeline_wrapper.py"])
    wait_until(
        lambda: fresh("POST", f"{server.url}/edited/run", json={}).json()["result"]["version"] == "v2-edited",
        timeout=5,
    )
