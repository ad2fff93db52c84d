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
    assert await cluster.wait_for(1, timeout=0.1) == []
    lagging = await cluster.wait_for(2, timeout=0.2)
    assert [w.id for w in lagging] == [cluster.id]


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
    assert not (tmp_path / "remote-host-1.json").exists()
