"""Instances that share nothing but a Redis store converge on every change before the call returns
(issue 12 point 3), keep serving their local copy while Redis is down, refuse deploys then, and
lose no committed deploy when Redis comes back empty. Real ``hayhooks run --workers 2`` processes
with separate pipelines directories, a real ``redis-server`` started (and killed) by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import stop_process, wait_until
from e2e._server import run_cli
from e2e.test_workers import deploy, fresh, spread, whoami
from tests.redis_support import RedisServer, redis_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisServer]:
    """Killed (``kill()``) and restarted (``start()``) on the same port by the tests."""
    with redis_server(tmp_path / "redis") as server:
        yield server


def workers_of(url: str) -> list[dict]:
    return fresh("GET", f"{url}/status").json()["workers"]


def all_in_sync(url: str, expected: int) -> list[dict]:
    return wait_until(
        lambda: (w := workers_of(url)) and len(w) == expected and all(x["in_sync"] for x in w) and w,
        timeout=60,
    )


def both_in_sync(a_url: str, b_url: str, expected: int) -> list[dict]:
    """Both instances list the same ``expected`` workers, all in sync. Each counts its own workers
    from its directory at once, the other's only once their heartbeat is in Redis: a deploy through
    an instance waits only for the workers it lists."""
    workers = all_in_sync(a_url, expected)
    assert {w["id"] for w in all_in_sync(b_url, expected)} == {w["id"] for w in workers}
    return workers


def versions(url: str, name: str, count: int = 40) -> tuple[set[int], set[object], set[int]]:
    """Fresh-connection requests: (statuses, versions served, pids that served them)."""
    responses = spread("POST", f"{url}/{name}/run", count, json={})
    ok = [r.json()["result"] for r in responses if r.status_code == 200]
    return {r.status_code for r in responses}, {o["version"] for o in ok}, {o["pid"] for o in ok}


def test_instances_sharing_only_redis_converge_and_survive_an_outage(hayhooks_server, tmp_path, redis_proc):
    env = {"HAYHOOKS_STORE_URL": f"redis://127.0.0.1:{redis_proc.port}/0"}
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    dir_a.mkdir()
    dir_b.mkdir()
    # A bundled example in A's directory seeds the empty Redis; B starts empty and pulls it.
    (dir_a / "bundled").mkdir()
    (dir_a / "bundled" / "pipeline_wrapper.py").write_text(whoami("bundled")["pipeline_wrapper.py"])
    a = hayhooks_server(dir_a, "--workers", "2", env=env)
    b = hayhooks_server(dir_b, "--workers", "2", env=env)
    workers = both_in_sync(a.url, b.url, 4)
    pids = {w["id"].rsplit("-", 1)[1] for w in workers}
    # B pulled everything before it reported ready.
    assert versions(b.url, "bundled")[:2] == ({200}, {"bundled"})
    assert (dir_b / "bundled" / "pipeline_wrapper.py").is_file()

    # Deploy through A: every worker of both instances serves it when the call returns.
    r = deploy(a.url, "who", whoami("v1"))
    assert r.status_code == 200, r.text
    assert r.json()["workers"] == 4 and r.json()["lagging"] == []
    served_pids: set[int] = set()
    for server in (a, b):
        statuses, seen, by = versions(server.url, "who")
        assert statuses == {200} and seen == {"v1"}
        served_pids |= by
    assert {str(p) for p in served_pids} <= pids

    # Overwrite through B, undeploy through A: same guarantee.
    r = deploy(b.url, "who", whoami("v2"), overwrite=True)
    assert r.status_code == 200 and r.json()["workers"] == 4, r.text
    for server in (a, b):
        assert versions(server.url, "who")[:2] == ({200}, {"v2"})
    # A rollback through A (history lives in Redis) brings v1 back everywhere.
    history = fresh("GET", f"{b.url}/pipelines/who/history").json()
    assert [v["current"] for v in history["versions"]][:2] == [True, False], history
    r = fresh("POST", f"{a.url}/pipelines/who/rollback")
    assert r.status_code == 200 and r.json()["workers"] == 4, r.text
    for server in (a, b):
        assert versions(server.url, "who")[:2] == ({200}, {"v1"})
    assert fresh("POST", f"{a.url}/undeploy/who").status_code == 200
    for server in (a, b):
        assert [r.status_code for r in spread("POST", f"{server.url}/who/run", 30, json={})] == [404] * 30
    assert not (dir_b / "who").exists()

    # `hayhooks status` (through either instance) lists the workers of both.
    result = run_cli("status", "--url", b.url)
    assert result.returncode == 0, result.stderr
    assert all(w["id"] in result.stdout for w in workers)

    assert deploy(a.url, "keep", whoami("kept")).status_code == 200

    # Redis goes away (and loses its data: no persistence).
    redis_proc.kill()
    r = deploy(a.url, "late", whoami("late"))
    assert r.status_code == 503, r.text
    assert "Redis" in r.json()["detail"]
    assert fresh("POST", f"{a.url}/late/run", json={}).status_code == 404
    assert not (dir_a / "late").exists()
    assert fresh("POST", f"{b.url}/undeploy/keep").status_code == 503
    for server in (a, b):
        assert versions(server.url, "keep")[:2] == ({200}, {"kept"})

    # A restart while Redis is down serves the local copy.
    stop_process(b.proc)
    b = hayhooks_server(dir_b, "--workers", "2", env=env)
    assert versions(b.url, "keep")[:2] == ({200}, {"kept"})
    assert versions(b.url, "bundled")[:2] == ({200}, {"bundled"})

    # Redis returns empty: the instances seed it from their copies; nothing committed is lost.
    redis_proc.start()
    # Their heartbeats reach the emptied Redis within about two seconds: deploy once they have.
    both_in_sync(a.url, b.url, 4)
    r = deploy(b.url, "late", whoami("late"))
    assert r.status_code == 200 and r.json()["workers"] == 4, r.text
    for server in (a, b):
        assert versions(server.url, "late")[:2] == ({200}, {"late"})
        assert versions(server.url, "keep")[:2] == ({200}, {"kept"})
        assert versions(server.url, "bundled")[:2] == ({200}, {"bundled"})
    assert sorted(fresh("GET", f"{a.url}/status").json()["pipelines"]) == ["bundled", "keep", "late"]


def test_an_unsupported_store_url_is_refused_at_startup(tmp_path):
    result = run_cli(
        "run", "--pipelines-dir", str(tmp_path), env={"HAYHOOKS_STORE_URL": "memcached://127.0.0.1:1"}
    )
    assert result.returncode != 0
    assert "HAYHOOKS_STORE_URL" in result.stderr + result.stdout
    assert "unsupported store URL scheme" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_hand_edits_of_the_local_copy_are_overwritten(hayhooks_server, tmp_path, redis_proc):
    env = {"HAYHOOKS_STORE_URL": f"redis://127.0.0.1:{redis_proc.port}/0", "HAYHOOKS_POLL_INTERVAL": "0.5"}
    server = hayhooks_server(tmp_path / "p", env=env)
    assert deploy(server.url, "edited", whoami("stored")).status_code == 200
    wrapper = tmp_path / "p" / "edited" / "pipeline_wrapper.py"
    wrapper.write_text(whoami("by-hand")["pipeline_wrapper.py"])
    wait_until(lambda: "'stored'" in wrapper.read_text(), timeout=30)
    assert fresh("POST", f"{server.url}/edited/run", json={}).json()["result"]["version"] == "stored"
    assert "hand edits" in server.log()
    assert httpx.get(f"{server.url}/status", timeout=10).json()["pipelines"] == ["edited"]


def test_a_version_failing_on_another_instance_is_reverted_everywhere(hayhooks_server, tmp_path, redis_proc):
    """Instance B cannot load the new version (its environment lacks something): the deploy through
    A answers 422 naming B's worker, and every worker of both instances serves the old version."""
    env = {"HAYHOOKS_STORE_URL": f"redis://127.0.0.1:{redis_proc.port}/0"}
    a = hayhooks_server(tmp_path / "a", env=env)
    b = hayhooks_server(tmp_path / "b", env={**env, "HAYHOOKS_TEST_FAIL_HERE": "1"})
    all_in_sync(a.url, 2)
    assert deploy(a.url, "picky", whoami("old")).status_code == 200
    picky = whoami("new")["pipeline_wrapper.py"].replace(
        "    def setup(self) -> None:\n        pass\n",
        "    def setup(self) -> None:\n"
        "        if os.environ.get('HAYHOOKS_TEST_FAIL_HERE'):\n"
        "            raise RuntimeError('missing on this instance')\n",
    )
    r = deploy(a.url, "picky", {"pipeline_wrapper.py": picky}, overwrite=True)
    assert r.status_code == 422, r.text
    assert "missing on this instance" in r.text
    for server in (a, b):
        assert versions(server.url, "picky", 20)[:2] == ({200}, {"old"})
