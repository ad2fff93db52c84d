"""Crash recovery of durable runs with real servers: ``hayhooks run --workers 2``, and two
instances sharing one pipelines directory (and so one SQLite store).

20 executions of a -> b -> c start; while every one of them is inside ``b``, the worker (or the
whole instance) owning them is killed with SIGKILL. Each execution must still complete exactly
once, resumed from its last checkpoint: the side-effect log shows ``a`` and ``c`` ran once for
every execution and only the killed ``b`` steps ran twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import LiveServer, stop_process, wait_until
from tests.redis_support import redis_server

pytestmark = pytest.mark.e2e

DURABLE = Path(__file__).parent.parent / "fixtures" / "durable"
N = 20
ENV = {
    "HAYHOOKS_DURABLE_LEASE_DURATION_MS": "1500",
    "HAYHOOKS_DURABLE_WORKER_CONCURRENCY": str(N),
    "HAYHOOKS_DURABLE_POLL_INTERVAL_SECONDS": "0.2",
    "HAYHOOKS_DURABLE_MAX_RUN_ATTEMPTS": "5",
    "HAYHOOKS_THREAD_POOL_SIZE": "48",
}


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    shutil.copytree(DURABLE / "durable_steps", pipelines / "durable_steps")
    return pipelines, tmp_path / "effects.log"


def _submit_all(url: str, log: Path, sleep_b: float) -> dict[str, str]:
    ids = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(N):
            response = client.post(
                "/durable_steps/run-durable",
                json={"value": i, "log": str(log), "tag": f"t{i}", "sleep_b": sleep_b},
            )
            assert response.status_code == 202, (
                f"{response.text}\n/status: {client.get('/status').text}"  # which pipelines failed to load
            )
            ids[f"t{i}"] = response.json()["execution_id"]
    return ids


def _effects(log: Path) -> Counter[str]:
    return Counter(line for line in log.read_text().splitlines() if line) if log.exists() else Counter()


def _views(url: str, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=30) as client:
        return {tag: client.get(f"/durable_steps/executions/{eid}").json() for tag, eid in ids.items()}


def _all_in_b(log: Path) -> bool:
    effects = _effects(log)
    return all(effects[f"t{i} b"] >= 1 for i in range(N))


def _pid_of(worker: str) -> int:
    # worker ids are "<host>-<pid>-<random>"
    return int(worker.rsplit("-", 2)[-2])


def _check_recovered(url: str, ids: dict[str, str], log: Path, killed: set[int]) -> None:
    def finished() -> bool:
        return all(v["status"] in ("completed", "failed", "canceled") for v in _views(url, ids).values())

    wait_until(finished, timeout=120, interval=0.5)
    views = _views(url, ids)
    effects = _effects(log)
    for i in range(N):
        tag = f"t{i}"
        view = views[tag]
        assert view["status"] == "completed", (view.get("error"), view)
        assert view["result"]["value"] == i + 111 and view["result"]["tag"] == tag
        assert effects[f"{tag} a"] == 1, f"{tag}: completed component a re-ran"
        assert effects[f"{tag} c"] == 1, f"{tag}: c ran {effects[f'{tag} c']} times"
    rerun = {tag for tag in ids if effects[f"{tag} b"] == 2}
    assert all(effects[f"{tag} b"] in (1, 2) for tag in ids)
    assert rerun, "the kill interrupted no execution"
    for tag in rerun:
        assert views[tag]["attempt"] == 2, views[tag]


def test_kill_a_worker_of_two(hayhooks_server: Any, tmp_path: Path) -> None:
    pipelines, log = _setup(tmp_path)
    server: LiveServer = hayhooks_server(pipelines, "--workers", "2", env=ENV)
    ids = _submit_all(server.url, log, sleep_b=4.0)
    wait_until(lambda: _all_in_b(log), timeout=60, interval=0.1)
    owners = Counter(v["worker"] for v in _views(server.url, ids).values() if v["status"] == "running")
    victim = _pid_of(owners.most_common(1)[0][0])
    assert victim != server.proc.pid  # a worker process, not the supervisor
    os.kill(victim, signal.SIGKILL)
    _check_recovered(server.url, ids, log, {victim})


@pytest.fixture(params=["sqlite", "redis"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield dict(ENV)
        return
    with redis_server(tmp_path / "redis") as redis:
        yield {**ENV, "HAYHOOKS_DURABLE_STORE": "redis", "HAYHOOKS_DURABLE_REDIS_URL": redis.url}


def test_kill_one_of_two_instances_sharing_a_directory(
    hayhooks_server: Any, tmp_path: Path, store_env: dict[str, str]
) -> None:
    pipelines, log = _setup(tmp_path)
    first: LiveServer = hayhooks_server(pipelines, env=store_env)
    second: LiveServer = hayhooks_server(pipelines, env=store_env)
    ids = _submit_all(first.url, log, sleep_b=4.0)
    wait_until(lambda: _all_in_b(log), timeout=60, interval=0.1)
    owners = Counter(
        _pid_of(v["worker"]) for v in _views(second.url, ids).values() if v["status"] == "running"
    )
    by_pid = {first.proc.pid: first, second.proc.pid: second}
    victim_pid = owners.most_common(1)[0][0]
    victim, survivor = by_pid[victim_pid], (second if by_pid[victim_pid] is first else first)
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(10)
    _check_recovered(survivor.url, ids, log, {victim_pid})


def test_graceful_stop_hands_executions_over_at_once(hayhooks_server: Any, tmp_path: Path) -> None:
    """SIGTERM releases running executions: the other instance resumes them long before the
    (60 s) lease would have expired, without using up an attempt."""
    pipelines, log = _setup(tmp_path)
    env = {
        **ENV,
        "HAYHOOKS_DURABLE_LEASE_DURATION_MS": "60000",
        "HAYHOOKS_DURABLE_SHUTDOWN_GRACE_SECONDS": "0.5",
    }
    first: LiveServer = hayhooks_server(pipelines, env=env)
    ids = _submit_all(first.url, log, sleep_b=2.0)
    wait_until(lambda: _all_in_b(log), timeout=60, interval=0.1)
    second: LiveServer = hayhooks_server(pipelines, env=env)
    started = time.monotonic()
    stop_process(first.proc)
    with httpx.Client(base_url=second.url, timeout=30) as client:

        def all_done() -> bool:
            views = [client.get(f"/durable_steps/executions/{eid}").json() for eid in ids.values()]
            return all(v["status"] == "completed" for v in views)

        wait_until(all_done, timeout=45, interval=0.3)
    assert time.monotonic() - started < 45
    views = _views(second.url, ids)
    effects = _effects(log)
    for i in range(N):
        tag = f"t{i}"
        assert views[tag]["attempt"] == 1, views[tag]  # a release does not count as an attempt
        assert effects[f"{tag} a"] == 1 and effects[f"{tag} c"] == 1
