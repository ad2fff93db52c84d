"""``hayhooks ray run`` on a local two-node Ray cluster (issue 12, point 5).

``ray.cluster_utils.Cluster`` runs a head and a second node of 1 CPU each (dashboard off) in a
helper process; ``hayhooks ray run --address ...`` joins it with two replicas, at most one per
node. Through Ray Serve's HTTP proxy: every replica serves every pipeline, a deploy through the
proxy reaches both replicas before the call returns, and the HTTP, OpenAI and MCP routes answer
as under ``hayhooks run``.

Ray reaches out of the machine unless told not to, so everything Ray runs here gets exactly the
environment below (and the suite's loopback guard checks the Python side of it).
Run alone with ``pytest -m ray``.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from _listeners import descendants, exposed_listeners
from conftest import HAYHOOKS, free_port, wait_until
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

pytest.importorskip("ray.serve", reason="needs the extra: pip install -e '.[ray]'")

pytestmark = [pytest.mark.e2e, pytest.mark.ray]

TOKEN = "ray-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HELPER = Path(__file__).with_name("_ray_cluster.py")

# Answers with its pid, and whether the suite's loopback guard is armed in the replica's process.
WHOAMI = (
    "import os, sys\nfrom hayhooks import BasePipelineWrapper\n"
    "class PipelineWrapper(BasePipelineWrapper):\n"
    "    def setup(self) -> None:\n        pass\n"
    "    def run_api(self, word: str) -> dict:\n"
    "        '''Say who answered.'''\n"
    "        guard = sys.modules.get('sitecustomize')\n"
    "        armed = bool(getattr(guard, 'installed', False))\n"
    "        return {'pid': os.getpid(), 'word': word, 'guarded': armed}\n"
    "    def run_chat_completion(self, model: str, messages: list, body: dict) -> str:\n"
    "        return f\"{os.getpid()}: {messages[-1]['content']}\"\n"
)

_CLIENT = httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=0))


def fresh(method: str, url: str, **kwargs) -> httpx.Response:
    headers = {"connection": "close", **kwargs.pop("headers", {})}
    return _CLIENT.request(method, url, headers=headers, **kwargs)


def spread(method: str, url: str, count: int, **kwargs) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: fresh(method, url, **kwargs), range(count)))


def closed_port() -> int:
    """A loopback port nobody listens on (usage reports, if ever attempted, are refused)."""
    return free_port()


@pytest.fixture
def ray_env() -> Iterator[dict[str, str]]:
    """The loopback-only Ray environment, on top of the suite's (which carries the guard)."""
    root = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths are long
    home = root / "home"
    home.mkdir()
    (home / "ray_bootstrap_config.yaml").write_text("")
    (root / "tmp").mkdir()
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_USAGE_STATS_REPORT_URL": f"http://127.0.0.1:{closed_port()}",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "HOME": str(home),
        "RAY_TMPDIR": str(root / "tmp"),
        "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
    }
    yield env
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ray_cluster(ray_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The cluster's address, and the pid of the process that owns it."""
    log = open(tmp_path / "ray-cluster.log", "w")
    proc = subprocess.Popen(
        [sys.executable, str(HELPER)],
        env=ray_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    try:
        address = proc.stdout.readline().strip()
        if not address:
            proc.wait(30)
            pytest.fail(
                "the Ray cluster did not start:\n" + (tmp_path / "ray-cluster.log").read_text()[-4000:]
            )
        yield address, proc.pid
    finally:
        proc.stdin.close()
        try:
            assert proc.wait(90) == 0, (tmp_path / "ray-cluster.log").read_text()[-4000:]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def test_replicas_on_two_nodes_serve_every_pipeline_and_every_route(ray_cluster, ray_env, tmp_path):
    address, cluster_pid = ray_cluster
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "hayhooks-ray.log"
    env = {**ray_env, "HAYHOOKS_ADMIN_TOKEN": TOKEN, "HAYHOOKS_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [
            HAYHOOKS,
            "ray",
            "run",
            "--address",
            address,
            "--replicas",
            "2",
            "--max-replicas-per-node",
            "1",
            "--proxy-location",
            "HeadOnly",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--pipelines-dir",
            str(pipelines),
        ],
        env=env,
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(log_path.read_text()[-4000:])
            return fresh("GET", f"{url}/ready", timeout=5).status_code == 200

        wait_until(ready, timeout=240, interval=0.5)
        workers = wait_until(
            lambda: len(w := fresh("GET", f"{url}/status").json()["workers"]) == 2 and w, timeout=60
        )
        replica_pids = {int(w["id"].rsplit("-", 1)[1]) for w in workers}
        # Nothing Ray started (GCS, raylets, workers, proxy, replicas) listens beyond loopback.
        assert exposed_listeners(descendants(cluster_pid) | descendants(proc.pid)) == []

        # A deploy through the proxy (any replica) returns once both replicas serve it.
        r = fresh(
            "POST",
            f"{url}/deploy-files",
            json={"name": "who", "files": {"pipeline_wrapper.py": WHOAMI}},
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        assert r.json()["workers"] == 2 and r.json()["lagging"] == []
        responses = spread("POST", f"{url}/who/run", 60, json={"word": "hi"})
        assert [x.status_code for x in responses if x.status_code != 200] == []
        served = {x.json()["result"]["pid"] for x in responses}
        for _ in range(5):  # more samples only if the router happened to favour one replica
            if served == replica_pids:
                break
            served |= {
                x.json()["result"]["pid"] for x in spread("POST", f"{url}/who/run", 40, json={"word": "hi"})
            }
        assert served == replica_pids, "both replicas (one per node) should have answered"
        assert all(x.json()["result"]["guarded"] for x in responses), "Ray workers run without the guard"

        # The same HTTP surface as `hayhooks run`: errors, OpenAPI, status.
        missing = fresh("POST", f"{url}/nope/run", json={})
        assert missing.status_code == 404 and "detail" in missing.json()
        bad = fresh("POST", f"{url}/who/run", json={})
        assert bad.status_code == 422
        assert "/who/run" in fresh("GET", f"{url}/openapi.json").json()["paths"]

        # OpenAI-compatible routes, plain and streamed.
        assert [m["id"] for m in fresh("GET", f"{url}/v1/models").json()["data"]] == ["who"]
        chat = fresh(
            "POST",
            f"{url}/v1/chat/completions",
            json={"model": "who", "messages": [{"role": "user", "content": "ping"}]},
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["content"].endswith(": ping")
        with _CLIENT.stream(
            "POST",
            f"{url}/v1/chat/completions",
            json={"model": "who", "messages": [{"role": "user", "content": "pong"}], "stream": True},
        ) as stream:
            assert stream.status_code == 200
            body = "".join(stream.iter_text())
        assert "pong" in body and body.rstrip().endswith("data: [DONE]")

        # MCP (Streamable HTTP, stateless: any replica can answer any message).
        async def mcp_call() -> tuple[set[str], str]:
            http = create_mcp_http_client(headers=AUTH)
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                result = await client.call_tool("who", {"word": "via-mcp"})
            return names, result.content[0].text

        names, text = anyio.run(mcp_call)
        assert "who" in names and "deploy_pipeline" in names
        assert "via-mcp" in text

        # An undeploy through the proxy, too, is everywhere when it returns.
        assert fresh("POST", f"{url}/undeploy/who", headers=AUTH).status_code == 200
        assert {x.status_code for x in spread("POST", f"{url}/who/run", 30, json={"word": "x"})} == {404}

        # SIGTERM stops Serve and leaves the cluster; the replicas' heartbeats go with them.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log_path.read_text()[-4000:]
        wait_until(lambda: list((pipelines / ".hayhooks" / "workers").glob("*.json")) == [], timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
