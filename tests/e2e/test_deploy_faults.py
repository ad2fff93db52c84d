"""Fault injection against the deploy engine's one promise (issue 10).

After a deploy, overwrite, rollback or undeploy call answers success, every live worker of every
instance serves exactly that state; after a failure answer, every worker still serves the old one;
nothing committed is missing on disk. Each test injects one fault into a real
``hayhooks run --workers 2`` (or two instances sharing a directory) and checks that invariant with
at least 50 fresh-connection requests per instance, reaching every worker.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest
from _server import HayhooksServer, clean_env, hayhooks_command, run_cli
from conftest import wait_until

pytestmark = pytest.mark.e2e

_CLIENT = httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=0))


def fresh(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """A request on a connection of its own, as independent clients make them."""
    return _CLIENT.request(method, url, headers={"connection": "close"}, **kwargs)


def wrapper(
    version: str, setup: str = "pass", run: str = "", delay: float = 0.0, head: str = ""
) -> dict[str, str]:
    body = f"""
        import os, time
        from pathlib import Path
        from hayhooks import BasePipelineWrapper
        {head}

        class PipelineWrapper(BasePipelineWrapper):
            def setup(self) -> None:
                {setup}

            def run_api(self) -> dict:
                time.sleep({delay})
                {run or "pass"}
                return {{"pid": os.getpid(), "version": {version!r}}}
        """
    return {"pipeline_wrapper.py": textwrap.dedent(body)}


def deploy(url: str, name: str, files: dict[str, str], **extra: Any) -> httpx.Response:
    return fresh("POST", f"{url}/deploy-files", json={"name": name, "files": files, **extra})


def sample(
    url: str, name: str, workers: int, count: int = 50
) -> list[tuple[int, Optional[str], Optional[int]]]:
    """At least ``count`` fresh-connection runs, more until every one of ``workers`` answered."""

    def one(_: int) -> tuple[int, Optional[str], Optional[int]]:
        r = fresh("POST", f"{url}/{name}/run", json={})
        if r.status_code == 200:
            return 200, r.json()["result"]["version"], r.json()["result"]["pid"]
        return r.status_code, None, None

    results: list[tuple[int, Optional[str], Optional[int]]] = []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results += pool.map(one, range(count))
        for _ in range(10):
            pids = {pid for status, _, pid in results if status == 200}
            if len(pids) >= workers or {s for s, _, _ in results} != {200}:
                break
            results += pool.map(one, range(30))
    return results


def assert_everywhere(servers: list[tuple[str, int]], name: str, version: Optional[str]) -> None:
    """Every worker of every instance serves ``version`` of ``name`` (None: 404 everywhere)."""
    for url, workers in servers:
        results = sample(url, name, workers)
        if version is None:
            assert {s for s, _, _ in results} == {404}, (url, results[:5])
            continue
        bad = [r for r in results if r[0] != 200 or r[1] != version]
        assert not bad, f"{len(bad)} of {len(results)} requests on {url} did not get {version!r}: {bad[:5]}"
        assert len({pid for _, _, pid in results}) == workers, "every worker must have answered"


def on_disk(pipelines_dir: Path, name: str) -> Optional[str]:
    """The version string of the committed wrapper (saved or ephemeral), or None."""
    for base in (pipelines_dir / ".hayhooks" / "ephemeral", pipelines_dir):
        wrapper_file = base / name / "pipeline_wrapper.py"
        if wrapper_file.is_file():
            text = wrapper_file.read_text()
            return text.split('"version": ')[1].split("}")[0].strip("'\"")
    return None


def statuses(url: str) -> list[dict]:
    return fresh("GET", f"{url}/status").json()["workers"]


def wait_workers(url: str, count: int) -> list[dict]:
    return wait_until(
        lambda: (w := statuses(url)) and len(w) == count and all(x["in_sync"] for x in w) and w, timeout=60
    )


def worker_pids(url: str) -> list[int]:
    return [int(w["id"].rsplit("-", 1)[1]) for w in statuses(url)]


def wait_replaced(url: str, victim: int) -> list[dict]:
    """uvicorn's supervisor replaced a killed worker, and the replacement is in sync."""
    return wait_until(
        lambda: (
            (w := statuses(url))
            and len(w) == 2
            and victim not in {int(x["id"].rsplit("-", 1)[1]) for x in w}
            and all(x["in_sync"] for x in w)
            and w
        ),
        timeout=90,
        interval=0.2,
    )


def no_leftovers(pipelines_dir: Path) -> None:
    staging = pipelines_dir / ".hayhooks" / "staging"
    assert list(staging.iterdir()) == [], "a commit copy outlived its deploy"


@pytest.fixture(params=["workers2", "two_instances"])
def topology(request, hayhooks_server, pipelines_dir):
    """Start the servers; return (deploy url, [(url, workers per instance)], start function)."""
    env = {"HAYHOOKS_DEPLOY_SYNC_TIMEOUT": "30", "PYTHONUNBUFFERED": "1"}

    def start(extra_env: Optional[dict[str, str]] = None) -> tuple[str, list[tuple[str, int]]]:
        full = {**env, **(extra_env or {})}
        if request.param == "workers2":
            server = hayhooks_server(pipelines_dir, "--workers", "2", env=full)
            wait_workers(server.url, 2)
            return server.url, [(server.url, 2)]
        a = hayhooks_server(pipelines_dir, env=full)
        b = hayhooks_server(pipelines_dir, env=full)
        wait_workers(a.url, 2)
        return a.url, [(a.url, 1), (b.url, 1)]

    return start


# -- 1. a version whose setup() works only in the first process that runs it ----------------------


def test_setup_that_fails_in_other_processes_is_refused_and_the_old_version_serves_everywhere(
    topology, pipelines_dir, tmp_path
):
    url, servers = topology()
    assert deploy(url, "first_only", wrapper("v1")).status_code == 200
    marker = tmp_path / "setup-ran"
    setup = f"m = Path({str(marker)!r})\n                if m.exists(): raise RuntimeError('only once')\n                m.touch()"
    r = deploy(url, "first_only", wrapper("v2", setup=setup), overwrite=True)
    assert r.status_code == 422, r.text
    assert "only once" in r.json()["detail"] and "worker" in r.json()["detail"]
    assert_everywhere(servers, "first_only", "v1")
    assert on_disk(pipelines_dir, "first_only") == "v1"
    no_leftovers(pipelines_dir)
    # A brand-new pipeline that fails the same way is not left half-deployed either.
    marker.unlink()
    r = deploy(url, "new_first_only", wrapper("n1", setup=setup))
    assert r.status_code == 422, r.text
    assert_everywhere(servers, "new_first_only", None)
    assert on_disk(pipelines_dir, "new_first_only") is None


# -- 3. a deleted or corrupted generation file ------------------------------------------------------


def test_deleting_the_generation_files_never_resets_the_counter(topology, pipelines_dir):
    url, servers = topology()
    for version in ("v1", "v2", "v3"):
        r = deploy(url, "gen", wrapper(version), overwrite=True)
        assert r.status_code == 200, r.text
    before = r.json()["generation"]
    (pipelines_dir / ".hayhooks" / "generation").unlink()
    (pipelines_dir / ".hayhooks" / "generation.mirror").write_text("not a number")
    r = deploy(url, "gen", wrapper("v4"), overwrite=True)
    assert r.status_code == 200, r.text
    assert r.json()["generation"] > before
    assert_everywhere(servers, "gen", "v4")
    r = deploy(url, "other", wrapper("o1"))
    assert r.status_code == 200 and r.json()["generation"] > before + 1
    assert_everywhere(servers, "other", "o1")


# -- 6. running requests across overwrite and undeploy ---------------------------------------------

SLOW_READER = {
    "utils.py": "LABEL = '{label}'\n",
    "data.txt": "{label}-data",
}


def slow_reader(label: str) -> dict[str, str]:
    files = wrapper(
        label,
        delay=3.0,
        run="import utils\n"
        "                data = (Path(__file__).parent / 'data.txt').read_text()\n"
        "                return {'pid': os.getpid(), 'version': utils.LABEL + ':' + data}",
    )
    return {**files, **{k: v.format(label=label) for k, v in SLOW_READER.items()}}


def test_running_requests_finish_on_their_own_version_across_overwrite_and_undeploy(topology, pipelines_dir):
    url, servers = topology()
    assert deploy(url, "reader", slow_reader("v1")).status_code == 200
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        running = [
            pool.submit(fresh, "POST", f"{u}/reader/run", json={}) for u, _ in servers for _ in range(2)
        ]
        time.sleep(1.0)  # they are inside run_api now
        r = deploy(url, "reader", slow_reader("v2"), overwrite=True)
        assert r.status_code == 200, r.text
        for future in running:
            answer = future.result()
            assert answer.status_code == 200, answer.text
            assert answer.json()["result"]["version"] == "v1:v1-data"
        running = [
            pool.submit(fresh, "POST", f"{u}/reader/run", json={}) for u, _ in servers for _ in range(2)
        ]
        time.sleep(1.0)
        assert fresh("POST", f"{url}/undeploy/reader").status_code == 200
        assert fresh("POST", f"{url}/reader/run", json={}).status_code == 404  # no new request starts
        for future in running:
            answer = future.result()
            assert answer.status_code == 200, answer.text
            assert answer.json()["result"]["version"] == "v2:v2-data"
    assert_everywhere(servers, "reader", None)


# -- 2. a worker respawned while still loading a slow pipeline -------------------------------------


def test_a_respawned_worker_still_loading_counts_and_catches_up(hayhooks_server, pipelines_dir, tmp_path):
    marker = tmp_path / "started-once"
    slow = wrapper(
        "slow",
        setup=f"m = Path({str(marker)!r})\n                time.sleep(10 if m.exists() else 0)\n                m.touch()",
    )
    (pipelines_dir / "slow").mkdir()
    (pipelines_dir / "slow" / "pipeline_wrapper.py").write_text(slow["pipeline_wrapper.py"])
    server = hayhooks_server(
        pipelines_dir,
        "--workers",
        "2",
        env={"HAYHOOKS_DEPLOY_SYNC_TIMEOUT": "40", "HAYHOOKS_HEARTBEAT_INTERVAL": "0.2"},
    )
    # /ready answered from one worker; the other may not have sent its first heartbeat yet.
    before = wait_until(lambda: len(p := worker_pids(server.url)) == 2 and p, timeout=60)
    os.kill(before[0], signal.SIGKILL)
    # The replacement appears (still loading 'slow' for 10 s) before we deploy.
    wait_until(lambda: len(set(worker_pids(server.url)) - set(before)) == 1, timeout=30, interval=0.1)
    r = deploy(server.url, "fresh", wrapper("f1"))
    assert r.status_code == 200, r.text
    assert r.json()["workers"] == 2, "the loading worker is live and was waited for"
    assert_everywhere([(server.url, 2)], "fresh", "f1")


# -- 4. a busy worker and the respawn of its neighbour keep save_files=false deploys ----------------


def test_a_busy_worker_is_not_dead_and_unsaved_deploys_survive_a_respawn(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2", env={"HAYHOOKS_HEARTBEAT_INTERVAL": "0.2"})
    wait_workers(server.url, 2)
    r = deploy(server.url, "unsaved", wrapper("u1"), save_files=False)
    assert r.status_code == 200, r.text
    # Keep every worker busy loading for a while (a hand-added pipeline with a slow setup).
    busy = pipelines_dir / "busy"
    busy.mkdir()
    (busy / "pipeline_wrapper.py").write_text(wrapper("b", setup="time.sleep(6)")["pipeline_wrapper.py"])
    wait_until(
        lambda: any(fresh("GET", f"{server.url}/status").json()["loading"] for _ in range(4)), timeout=10
    )
    victim = worker_pids(server.url)[0]
    os.kill(victim, signal.SIGKILL)
    wait_replaced(server.url, victim)
    assert_everywhere([(server.url, 2)], "unsaved", "u1")
    assert on_disk(pipelines_dir, "unsaved") == "u1"


# -- 5. imports that loop, setups that hang ---------------------------------------------------------


def test_a_looping_import_at_deploy_blocks_nobody(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2", env={"HAYHOOKS_SETUP_TIMEOUT": "4"})
    wait_workers(server.url, 2)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        looping = pool.submit(deploy, server.url, "loops", {"pipeline_wrapper.py": "while True:\n    pass\n"})
        hanging = pool.submit(deploy, server.url, "hangs", wrapper("h", setup="time.sleep(3600)"))
        time.sleep(0.5)
        started = time.monotonic()
        r = deploy(server.url, "other", wrapper("o1"))
        assert r.status_code == 200, r.text
        assert time.monotonic() - started < 4, "an unrelated deploy must not wait for a hung load"
        assert fresh("GET", f"{server.url}/status").status_code == 200
        for future, fragment in ((looping, "importing pipeline_wrapper.py"), (hanging, "setup()")):
            answer = future.result()
            assert answer.status_code == 422 and fragment in answer.json()["detail"], answer.text
    assert_everywhere([(server.url, 2)], "other", "o1")
    assert_everywhere([(server.url, 2)], "loops", None)
    # Hand edits are still picked up.
    (pipelines_dir / "by_hand").mkdir()
    (pipelines_dir / "by_hand" / "pipeline_wrapper.py").write_text(wrapper("h1")["pipeline_wrapper.py"])
    wait_until(lambda: fresh("POST", f"{server.url}/by_hand/run", json={}).status_code == 200, timeout=10)
    assert fresh("POST", f"{server.url}/undeploy/other").status_code == 200


def test_a_looping_import_at_startup_keeps_nobody_else_waiting(hayhooks_server, pipelines_dir):
    (pipelines_dir / "loops").mkdir()
    (pipelines_dir / "loops" / "pipeline_wrapper.py").write_text("while True:\n    pass\n")
    (pipelines_dir / "healthy").mkdir()
    (pipelines_dir / "healthy" / "pipeline_wrapper.py").write_text(wrapper("ok")["pipeline_wrapper.py"])
    server = hayhooks_server(
        pipelines_dir, "--workers", "2", env={"HAYHOOKS_SETUP_TIMEOUT": "8"}, ready_timeout=60
    )
    wait_workers(server.url, 2)  # both settled (the first /ready may come from one worker only)
    for _ in range(6):
        status = fresh("GET", f"{server.url}/status").json()
        assert [f["name"] for f in status["failed"]] == ["loops"], status
    assert_everywhere([(server.url, 2)], "healthy", "ok")


def test_healthy_pipelines_serve_while_a_slow_setup_still_runs(tmp_path, pipelines_dir):
    """Point 10 of issue 9: loaded pipelines answer while /ready still says 'loading'."""
    (pipelines_dir / "slow").mkdir()
    (pipelines_dir / "slow" / "pipeline_wrapper.py").write_text(
        wrapper("s", setup="time.sleep(15)")["pipeline_wrapper.py"]
    )
    (pipelines_dir / "quick").mkdir()
    (pipelines_dir / "quick" / "pipeline_wrapper.py").write_text(wrapper("q")["pipeline_wrapper.py"])
    server = HayhooksServer(pipelines_dir, workdir=tmp_path)
    command_env = {"HAYHOOKS_SETUP_TIMEOUT": "60"}
    server.extra_env = command_env
    try:
        server.process = subprocess.Popen(
            [
                *hayhooks_command(),
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                str(server.port),
                "--pipelines-dir",
                str(pipelines_dir),
            ],
            cwd=tmp_path,
            env=clean_env(**command_env),
            stdout=open(server.log_path, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server._log = open(server.log_path, "ab")
        wait_until(lambda: fresh("POST", f"{server.url}/quick/run", json={}).status_code == 200, timeout=12)
        assert fresh("GET", f"{server.url}/ready").status_code == 503, "/ready still means everything loaded"
        wait_until(lambda: fresh("GET", f"{server.url}/ready").status_code == 200, timeout=60)
        assert fresh("POST", f"{server.url}/slow/run", json={}).status_code == 200
    finally:
        server.stop()


# -- 7. sibling modules named like the standard library --------------------------------------------


def shadowing(label: str) -> dict[str, str]:
    files = wrapper(
        label,
        head="import json, logging, utils",
        run="import utils as lazy\n"
        "                return {'pid': os.getpid(), 'version': utils.V + json.V + logging.V + lazy.V}",
    )
    return {
        **files,
        "utils.py": f"V = '{label}'\n",
        "json.py": f"V = '{label}'\n",
        "logging.py": f"V = '{label}'\n",
    }


def test_pipelines_shipping_json_and_logging_modules_harm_nobody(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2")
    wait_workers(server.url, 2)
    for label in ("a", "b"):
        assert deploy(server.url, f"shadow_{label}", shadowing(label)).status_code == 200
    plain = wrapper(
        "p", run="import json\n                return {'pid': os.getpid(), 'version': json.dumps([1])}"
    )
    assert deploy(server.url, "plain", plain).status_code == 200
    assert_everywhere([(server.url, 2)], "shadow_a", "aaaa")
    assert_everywhere([(server.url, 2)], "shadow_b", "bbbb")
    assert_everywhere([(server.url, 2)], "plain", "[1]")
    # The server's own JSON and logging keep working.
    assert fresh("GET", f"{server.url}/status").json()["pipelines"] == ["plain", "shadow_a", "shadow_b"]


# -- 8. a bounded archive, history and rollback, and hostile heartbeats ----------------------------


def test_archive_is_bounded_and_rollback_is_a_deploy(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2", env={"HAYHOOKS_ARCHIVE_KEEP": "3"})
    wait_workers(server.url, 2)
    for i in range(8):
        assert deploy(server.url, "kept", wrapper(f"v{i}"), overwrite=True).status_code == 200
    archived = [p for p in (pipelines_dir / ".hayhooks" / "archive" / "kept").iterdir()]
    assert len(archived) == 3
    out = run_cli("pipeline", "history", "kept", "--url", server.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("overwritten") == 3 and "deployed" in out.stdout
    versions = fresh("GET", f"{server.url}/pipelines/kept/history").json()["versions"]
    oldest = versions[-1]["version"]
    out = run_cli("pipeline", "rollback", "kept", "--to", oldest, "--url", server.url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert_everywhere([(server.url, 2)], "kept", "v4")
    assert on_disk(pipelines_dir, "kept") == "v4"
    out = run_cli("pipeline", "rollback", "kept", "--url", server.url)  # newest archived: v7 again
    assert out.returncode == 0, out.stdout + out.stderr
    assert_everywhere([(server.url, 2)], "kept", "v7")
    r = fresh("POST", f"{server.url}/pipelines/kept/rollback", json={"version": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    assert_everywhere([(server.url, 2)], "kept", "v7")
    assert "action=rollback" in server.log() and "outcome=ok" in server.log()


def test_a_hostile_heartbeat_file_does_not_make_deploys_time_out(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2", env={"HAYHOOKS_DEPLOY_SYNC_TIMEOUT": "15"})
    wait_workers(server.url, 2)
    workers_dir = pipelines_dir / ".hayhooks" / "workers"
    host = statuses(server.url)[0]["id"].rsplit("-", 1)[0]
    forged = {
        "id": f"{host}-1",
        "host": host,
        "pid": 1,
        "generation": 0,
        "version": 0,
        "pipelines": 0,
        "started_at": time.time(),
        "updated_at": time.time() + 10**6,
    }
    (workers_dir / f"{host}-1.json").write_text(json.dumps(forged))
    (workers_dir / "junk.json").write_text("{")
    r = deploy(server.url, "after_forgery", wrapper("a1"))
    assert r.status_code == 200 and r.json()["workers"] == 2, r.text
    assert_everywhere([(server.url, 2)], "after_forgery", "a1")


# -- 9. kill -9 of a worker and of the whole server at several points of a deploy -------------------


@pytest.mark.parametrize("at", [0.5, 2.5, 4.5])
def test_kill_a_worker_during_a_deploy(hayhooks_server, pipelines_dir, at):
    server = hayhooks_server(pipelines_dir, "--workers", "2", env={"HAYHOOKS_DEPLOY_SYNC_TIMEOUT": "40"})
    wait_workers(server.url, 2)
    assert deploy(server.url, "k", wrapper("old")).status_code == 200
    victim = worker_pids(server.url)[0]
    answer: list[Any] = []

    def call() -> None:
        try:
            answer.append(deploy(server.url, "k", wrapper("new", setup="time.sleep(2)"), overwrite=True))
        except httpx.HTTPError as exc:  # the deploying worker itself was killed
            answer.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(at)
    os.kill(victim, signal.SIGKILL)
    thread.join(60)
    wait_replaced(server.url, victim)
    committed = on_disk(pipelines_dir, "k")
    result = answer[0]
    if isinstance(result, httpx.Response) and result.status_code == 200:
        assert committed == "new"
    elif isinstance(result, httpx.Response):
        assert result.status_code in (422, 504), result.text
    # Whatever the answer, all workers agree with what is on disk.
    assert_everywhere([(server.url, 2)], "k", committed)


@pytest.mark.parametrize("at", [0.5, 2.5])
def test_kill_the_whole_server_during_a_deploy(hayhooks_server, pipelines_dir, at):
    server = hayhooks_server(pipelines_dir, "--workers", "2")
    wait_workers(server.url, 2)
    assert deploy(server.url, "k", wrapper("old")).status_code == 200
    thread = threading.Thread(
        target=lambda: _swallow(
            lambda: deploy(server.url, "k", wrapper("new", setup="time.sleep(2)"), overwrite=True)
        )
    )
    thread.start()
    time.sleep(at)
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    thread.join(30)
    committed = on_disk(pipelines_dir, "k")
    assert committed in ("old", "new")
    restarted = hayhooks_server(pipelines_dir, "--workers", "2")
    wait_workers(restarted.url, 2)
    assert_everywhere([(restarted.url, 2)], "k", committed)
    no_leftovers(pipelines_dir)
    work = pipelines_dir / ".hayhooks" / "work"
    live = {w["id"] for w in statuses(restarted.url)}
    assert {p.name for p in work.iterdir()} <= live, "version folders of dead workers are removed"


def _swallow(fn: Any) -> None:
    try:
        fn()
    except httpx.HTTPError:
        pass


# -- issue 9, point 7: sys.exit and an unwritable directory -----------------------------------------


def test_sys_exit_in_a_wrapper_and_an_unwritable_directory_answer_cleanly(hayhooks_server, pipelines_dir):
    server = hayhooks_server(pipelines_dir, "--workers", "2")
    wait_workers(server.url, 2)
    for files in (
        {"pipeline_wrapper.py": "import sys\nsys.exit(1)\n"},
        wrapper("x", setup="import sys; sys.exit(2)"),
    ):
        r = deploy(server.url, "quitter", files)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert "sys.exit" in detail and str(pipelines_dir) not in detail and "Traceback" not in detail
    assert fresh("GET", f"{server.url}/health").status_code == 200
    assert_everywhere([(server.url, 2)], "quitter", None)
    # The directory stops being writable: as root a chmod does not stop us, so the folder deploys
    # write into is replaced by a file (every write below it fails like on a read-only mount).
    work = pipelines_dir / ".hayhooks" / "work"
    os.rename(work, pipelines_dir / ".hayhooks" / "work.away")
    work.write_text("")
    if os.geteuid() != 0:
        os.chmod(pipelines_dir / ".hayhooks", 0o555)
    try:
        r = deploy(server.url, "nowhere", wrapper("n"))
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert (
            "pipelines directory" in detail and str(pipelines_dir) not in detail and "Traceback" not in detail
        )
    finally:
        os.chmod(pipelines_dir / ".hayhooks", 0o755)
    assert list((pipelines_dir / ".hayhooks" / "staging").iterdir()) == []
    assert fresh("GET", f"{server.url}/health").status_code == 200


# -- concurrent overwrites of one pipeline through two instances --------------------------------------


def test_concurrent_overwrites_through_two_instances_answer_at_once(hayhooks_server, pipelines_dir):
    """Two instances overwrite the same pipeline at the same moment. The later commit wins; the
    earlier call must not wait out the sync timeout for workers that will never serve it: it answers
    409 (superseded) at once, or 200 if every worker served it before the later commit."""
    env = {"HAYHOOKS_DEPLOY_SYNC_TIMEOUT": "40"}
    a = hayhooks_server(pipelines_dir, env=env)
    b = hayhooks_server(pipelines_dir, env=env)
    wait_workers(a.url, 2)
    assert deploy(a.url, "race", wrapper("v0")).status_code == 200
    slow = "time.sleep(1.0)"  # both candidates load side by side, so the commits land close together
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        via_a = pool.submit(deploy, a.url, "race", wrapper("va", setup=slow), overwrite=True)
        via_b = pool.submit(deploy, b.url, "race", wrapper("vb", setup=slow), overwrite=True)
        answers = {"va": via_a.result(), "vb": via_b.result()}
    assert time.monotonic() - started < 20, "nobody waits for the 40 s sync timeout"
    assert sorted(r.status_code for r in answers.values()) in ([200, 200], [200, 409]), {
        v: r.text for v, r in answers.items()
    }
    for r in answers.values():
        if r.status_code == 409:
            assert "changed again" in r.json()["detail"], r.text
    winner = max(
        (v for v, r in answers.items() if r.status_code == 200),
        key=lambda v: answers[v].json()["generation"],
    )
    assert_everywhere([(a.url, 1), (b.url, 1)], "race", winner)
    assert on_disk(pipelines_dir, "race") == winner
