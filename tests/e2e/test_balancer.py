"""Two instances behind a real nginx, sharing one pipelines directory (issue 12, point 2).

nginx runs the shipped ``deploy/nginx/hayhooks.conf`` with its upstream servers and listen port
swapped for loopback ones, in the foreground, with every path it writes in the test's tmp folder.
Each instance is a real ``hayhooks run --workers 2``; every client request opens a fresh connection,
as independent clients would.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _server import run_cli
from conftest import child_pids, free_port, require_binary, wait_until
from test_workers import whoami

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONF = REPO / "deploy" / "nginx" / "hayhooks.conf"
TOKEN = "balancer-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

_CLIENT = httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=0))


def fresh(method: str, url: str, **kwargs) -> httpx.Response:
    headers = {"connection": "close", **kwargs.pop("headers", {})}
    return _CLIENT.request(method, url, headers=headers, **kwargs)


def spread(method: str, url: str, count: int, **kwargs) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: fresh(method, url, **kwargs), range(count)))


def nginx_config(tmp: Path, listen: int, upstreams: list[int]) -> Path:
    """The shipped site config inside a minimal main config whose every path is under ``tmp``."""
    site = SHIPPED_CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n" for p in upstreams)
    site, n_upstream = re.subn(r"(upstream hayhooks \{\n)(?:.*\n)*?(\})", rf"\g<1>{servers}\g<2>", site)
    site, n_listen = re.subn(r"listen \d+;", f"listen 127.0.0.1:{listen};", site)
    assert n_upstream == 1 and n_listen == 1, "deploy/nginx/hayhooks.conf changed shape"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # the temp folders are private to this user
        + f"daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log info;\n"
        + "events { worker_connections 512; }\n"
        + "http {\n"
        + f"  access_log {tmp}/access.log;\n"
        + "".join(f"  {sub}_temp_path {tmp}/{sub};\n" for sub in ("proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  client_body_temp_path {tmp}/body;\n"
        + site
        + "}\n"
    )
    return conf


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[callable]:
    nginx = require_binary("nginx", "nginx-light")
    procs: list[subprocess.Popen] = []

    def start(upstreams: list[int]) -> str:
        root = tmp_path / "nginx"
        listen = free_port()
        conf = nginx_config(root, listen, upstreams)
        check = subprocess.run(
            [nginx, "-t", "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen(
            [nginx, "-p", str(root), "-e", str(root / "error.log"), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "stderr.log", "wb"),
            start_new_session=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{listen}"

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError((root / "error.log").read_text())
            return httpx.get(f"{url}/health", timeout=2).status_code == 200

        wait_until(up, timeout=30)
        return url

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # nginx's graceful stop
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def two_instances(hayhooks_server, pipelines_dir):
    env = {"HAYHOOKS_ADMIN_TOKEN": TOKEN, "HAYHOOKS_LOG_LEVEL": "warning", "HAYHOOKS_ACCESS_LOG": "false"}
    servers = [hayhooks_server(pipelines_dir, "--workers", "2", env=env) for _ in range(2)]
    wait_until(
        lambda: (
            len(w := fresh("GET", f"{servers[0].url}/status").json()["workers"]) == 4
            and all(x["in_sync"] for x in w)
        ),
        timeout=90,
    )
    return servers


def worker_pids(url: str) -> set[int]:
    # Worker ids are admin details: through the balancer only the admin token shows them.
    status = fresh("GET", f"{url}/status", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    return {int(w["id"].rsplit("-", 1)[1]) for w in status["workers"]}


def test_deploy_through_balancer_is_served_by_every_worker_of_both_instances(balancer, two_instances):
    url = balancer([s.port for s in two_instances])
    pids = worker_pids(url)
    assert len(pids) == 4

    # Without the token a deploy through the proxy is refused; with it, it lands everywhere.
    assert fresh("POST", f"{url}/deploy-files", json={"name": "who", "files": whoami("v1")}).status_code in (
        401,
        403,
    )
    r = fresh("POST", f"{url}/deploy-files", json={"name": "who", "files": whoami("v1")}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["workers"] == 4 and r.json()["lagging"] == []

    # Right after the call returned: 200 fresh-connection requests, no failure, all four workers.
    responses = spread("POST", f"{url}/who/run", 200, json={})
    assert [r.status_code for r in responses if r.status_code != 200] == []
    served = {r.json()["result"]["pid"] for r in responses}
    for _ in range(5):  # more samples only if the kernel happened to favour one worker
        if served == pids:
            break
        more = spread("POST", f"{url}/who/run", 50, json={})
        assert [r.status_code for r in more if r.status_code != 200] == []
        served |= {r.json()["result"]["pid"] for r in more}
    assert served == pids, f"served by {served}, workers {pids}"
    assert {r.json()["result"]["version"] for r in responses} == {"v1"}

    # An overwrite through the balancer: nobody serves the old version once it returned.
    r = fresh(
        "POST",
        f"{url}/deploy-files",
        json={"name": "who", "files": whoami("v2"), "overwrite": True},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    after = spread("POST", f"{url}/who/run", 100, json={})
    assert {(r.status_code, r.json()["result"]["version"]) for r in after} == {(200, "v2")}

    # `hayhooks status --url <balancer>` lists the workers of both instances (worker ids are admin
    # details: through a proxy only the token shows them).
    result = run_cli("status", "--url", url, "--token", TOKEN)
    assert result.returncode == 0, result.stderr
    assert "4 worker(s)" in result.stdout and "Workers (4)" in result.stdout
    for pid in pids:
        assert str(pid) in result.stdout

    r = fresh("POST", f"{url}/undeploy/who", headers=AUTH)
    assert r.status_code == 200, r.text
    assert {r.status_code for r in spread("POST", f"{url}/who/run", 40, json={})} == {404}


def test_instance_stopped_mid_load_loses_no_request(balancer, two_instances):
    url = balancer([s.port for s in two_instances])
    r = fresh(
        "POST",
        f"{url}/deploy-files",
        json={"name": "slowish", "files": whoami("v1", delay=0.05)},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text

    victim = two_instances[0]
    victim_pids = child_pids(victim.proc.pid)  # uvicorn's workers of one instance
    assert len(victim_pids & worker_pids(url)) == 2
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                r = fresh("POST", f"{url}/slowish/run", json={})
                ok = r.status_code == 200
                results.append((r.status_code, str(r.json()["result"]["pid"]) if ok else r.text))
            except httpx.HTTPError as exc:  # a failure of the balancer itself counts as a loss
                results.append((0, repr(exc)))

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(results) >= 60, timeout=60)
        # SIGTERM to the instance's main process only, as `docker stop` / the kubelet do: uvicorn's
        # supervisor stops its workers, which finish what they have and stop accepting.
        victim.proc.send_signal(signal.SIGTERM)
        victim.proc.wait(30)
        at_stop = len(results)
        wait_until(lambda: len(results) >= at_stop + 60, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert victim.proc.returncode == 0, victim.log()
    failures = [r for r in results if r[0] != 200]
    assert failures == [], f"{len(failures)} of {len(results)} requests lost: {failures[:5]}"
    # The stopped instance did take its share before the stop, and none after it.
    assert {int(pid) for _, pid in results[:at_stop]} & victim_pids
    assert not {int(pid) for _, pid in results[at_stop + len(threads) :]} & victim_pids
    # The survivor took everything after the stop, and still knows its own workers only.
    survivor = two_instances[1]
    wait_until(lambda: len(fresh("GET", f"{url}/status").json()["workers"]) == 2, timeout=30)
    assert worker_pids(url) == worker_pids(survivor.url)
