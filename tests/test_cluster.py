import json
import subprocess
import sys
import time

from hayhooks.pipelines.cluster import Cluster


def test_beat_and_live_workers(tmp_path):
    cluster = Cluster(tmp_path, heartbeat_interval=1.0)
    cluster.beat(3, 1, 2)
    (me,) = cluster.workers()
    assert me.id == cluster.id and me.generation == 3 and me.pipelines == 2
    cluster.leave()
    assert cluster.workers() == []


def test_dead_and_stale_workers_are_pruned(tmp_path):
    cluster = Cluster(tmp_path, heartbeat_interval=1.0)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    now = time.time()
    dead = {
        "id": f"{cluster.host}-{proc.pid}",
        "host": cluster.host,
        "pid": proc.pid,
        "generation": 1,
        "version": 1,
        "pipelines": 0,
        "started_at": now,
        "updated_at": now,
    }
    stale = {**dead, "id": "elsewhere-1", "host": "elsewhere", "pid": 1, "updated_at": now - 60}
    (tmp_path / f"{dead['id']}.json").write_text(json.dumps(dead))
    (tmp_path / "elsewhere-1.json").write_text(json.dumps(stale))
    assert cluster.workers() == []
    assert list(tmp_path.glob("*.json")) == []


async def test_wait_for_reports_laggards_after_timeout(tmp_path):
    cluster = Cluster(tmp_path, heartbeat_interval=1.0)
    cluster.beat(1, 1, 0)
    assert (await cluster.wait_for(1, timeout=0.1)).lagging == []
    lagging = (await cluster.wait_for(2, timeout=0.2)).lagging
    assert [w.id for w in lagging] == [cluster.id]


async def test_wait_for_one_pipeline_reports_who_serves_and_who_failed(tmp_path):
    cluster = Cluster(tmp_path, heartbeat_interval=1.0)
    cluster.beat(1, 1, 1, seen=2, served={"a": "fp2"})
    outcome = await cluster.wait_for(2, timeout=0.1, name="a", fingerprint="fp2")
    assert outcome.lagging == [] and outcome.failed == []
    cluster.beat(1, 1, 1, seen=3, served={"a": "fp2"}, failed={"a": ["fp3", "boom"]})
    outcome = await cluster.wait_for(3, timeout=0.1, name="a", fingerprint="fp3")
    assert [(w.id, e) for w, e in outcome.failed] == [(cluster.id, "boom")]
    outcome = await cluster.wait_for(3, timeout=0.1, name="a")  # undeploy: must be gone
    assert [w.id for w in outcome.lagging] == [cluster.id]


async def test_wait_for_returns_at_once_when_a_later_change_replaced_this_one(tmp_path):
    """A concurrent deploy of the same name committed after this one: the worker settled the later
    generation and serves its version. That is not lagging (it will never serve this one), and the
    caller must not wait out the timeout."""
    cluster = Cluster(tmp_path, heartbeat_interval=1.0)
    cluster.beat(4, 1, 1, seen=4, served={"a": "fp4"})
    started = time.monotonic()
    outcome = await cluster.wait_for(3, timeout=30, name="a", fingerprint="fp3")
    assert time.monotonic() - started < 5
    assert outcome.lagging == [] and [w.id for w in outcome.superseded] == [cluster.id]
    outcome = await cluster.wait_for(3, timeout=30, name="a")  # an undeploy, redeployed since
    assert outcome.lagging == [] and [w.id for w in outcome.superseded] == [cluster.id]
    cluster.beat(3, 1, 1, seen=4, served={"a": "fp2"})  # still settling: lagging, not superseded
    outcome = await cluster.wait_for(3, timeout=0.2, name="a", fingerprint="fp3")
    assert [w.id for w in outcome.lagging] == [cluster.id] and outcome.superseded == []


def test_a_busy_or_restarting_worker_of_this_host_stays_live(tmp_path):
    """Liveness on this host is the process itself, not the freshness of its heartbeat."""
    cluster = Cluster(tmp_path, heartbeat_interval=0.1)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = Cluster(tmp_path, heartbeat_interval=0.1)
        other.id, other.pid = f"{cluster.host}-{proc.pid}", proc.pid
        from hayhooks.pipelines.cluster import _pid_start

        other.pid_start = _pid_start(proc.pid)
        other.beat(-1, 0, 0, loading=True)
        time.sleep(cluster.stale_after + 0.3)  # no beat for longer than stale_after
        ids = [w.id for w in cluster.workers()]
        assert other.id in ids, "busy, not dead"
    finally:
        proc.kill()
        proc.wait()
    assert other.id not in [w.id for w in cluster.workers()]


def test_forged_and_corrupt_heartbeats_are_ignored_and_removed(tmp_path):
    cluster = Cluster(tmp_path, heartbeat_interval=0.1)
    now = time.time()
    forged = {  # pid 1 is alive, but it is not the process that wrote this file
        "id": f"{cluster.host}-1",
        "host": cluster.host,
        "pid": 1,
        "generation": 0,
        "version": 1,
        "pipelines": 0,
        "started_at": now,
        "updated_at": now + 10_000,
        "pid_start": 123456789,
    }
    (tmp_path / f"{forged['id']}.json").write_text(json.dumps(forged))
    (tmp_path / "garbage.json").write_text("{not json")
    old = time.time() - 60
    import os

    os.utime(tmp_path / "garbage.json", (old, old))
    assert cluster.workers() == []
    assert list(tmp_path.glob("*.json")) == []


def _remote(cluster_dir, worker_id: str, updated_at: float) -> None:
    state = {
        "id": worker_id,
        "host": "remote-host",
        "pid": 1,
        "generation": 1,
        "version": 1,
        "pipelines": 0,
        "started_at": updated_at,
        "updated_at": updated_at,
    }
    (cluster_dir / f"{worker_id}.json").write_text(json.dumps(state))


def test_remote_liveness_ignores_clock_skew(tmp_path):
    cluster = Cluster(tmp_path, heartbeat_interval=0.1)  # stale after 2 s
    behind = time.time() - 20  # its clock runs 20 s behind ours, but it keeps beating
    _remote(tmp_path, "remote-host-1", behind)
    assert [w.id for w in cluster.workers()] == ["remote-host-1"]
    for i in range(3):
        time.sleep(0.8)
        _remote(tmp_path, "remote-host-1", behind + i + 1)
        assert [w.id for w in cluster.workers()] == ["remote-host-1"], "a beating worker stays live"
    # It stops beating: dead once its heartbeat has not changed for stale_after, by our clock.
    time.sleep(cluster.stale_after + 0.2)
    assert cluster.workers() == []
    # Not counted, but its file is only removed once it is abandoned (it may come back).
    assert (tmp_path / "remote-host-1.json").exists()
