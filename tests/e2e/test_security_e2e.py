"""No way in through loopback trust, against a real ``hayhooks run`` and a real nginx in front of it.

A loopback-bound server without an admin token lets this machine's users deploy. It must not let
in anyone a reverse proxy on the same host forwards, nor a web page whose DNS name was rebound to
127.0.0.1. Also: settings given as lists reach ``--workers 2``, and over-large bodies cost no memory.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import child_pids, copy_pipelines, free_port, require_binary, stop_process, wait_until
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

WRAPPER = (
    "from hayhooks import BasePipelineWrapper\n"
    "class PipelineWrapper(BasePipelineWrapper):\n"
    "    def setup(self) -> None:\n        pass\n"
    "    def run_api(self, text: str) -> str:\n        return text\n"
)

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # The configuration most guides give.
    server {{
        listen 127.0.0.1:{typical};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
    # The bare minimum: nginx's defaults (HTTP/1.0 upstream, Host rewritten to the upstream).
    server {{
        listen 127.0.0.1:{bare};
        location / {{ proxy_pass http://127.0.0.1:{upstream}; }}
    }}
    # Only the Host passed through.
    server {{
        listen 127.0.0.1:{host_only};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
        }}
    }}
}}
"""


def deploy(url: str, name: str, **headers: str) -> httpx.Response:
    body = {"name": name, "files": {"pipeline_wrapper.py": WRAPPER}}
    return httpx.post(f"{url}/deploy-files", json=body, headers=headers, timeout=60)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[callable]:
    binary = require_binary("nginx", "nginx-light")
    procs: list[subprocess.Popen] = []

    def start(upstream: int) -> dict[str, str]:
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        ports = {"typical": free_port(), "bare": free_port(), "host_only": free_port()}
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=prefix, upstream=upstream, **ports))
        proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=open(prefix / "stderr.log", "wb"),
            start_new_session=True,
        )
        procs.append(proc)
        urls = {kind: f"http://127.0.0.1:{port}" for kind, port in ports.items()}

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError((prefix / "stderr.log").read_text() + (prefix / "error.log").read_text())
            return httpx.get(f"{urls['typical']}/health", timeout=2).status_code == 200

        wait_until(up, timeout=30, interval=0.1)
        return urls

    yield start
    for proc in procs:
        stop_process(proc)


def served(url: str) -> list[str]:
    return httpx.get(f"{url}/status", timeout=30).json()["pipelines"]


def test_no_deploy_through_a_proxy_or_a_rebound_name(hayhooks_server, nginx, pipelines_dir):
    copy_pipelines(pipelines_dir, "echo")
    server = hayhooks_server(pipelines_dir)  # bound to 127.0.0.1, no admin token
    proxy = nginx(server.port)

    # Through nginx, whatever Host the client names, nothing deploys or undeploys ...
    for kind in ("typical", "bare"):
        for host in ("hayhooks.example.com", "127.0.0.1", "localhost"):
            r = deploy(proxy[kind], f"via_{kind}", Host=host)
            assert r.status_code == 403, (kind, host, r.text)
            assert "HAYHOOKS_ADMIN_TOKEN" in r.json()["detail"]
        assert httpx.post(f"{proxy[kind]}/undeploy/echo", timeout=30).status_code == 403
    assert deploy(proxy["host_only"], "via_host", Host="hayhooks.example.com").status_code == 403
    # ... while serving works through it, and /status shows no paths to whoever comes through.
    r = httpx.post(f"{proxy['typical']}/echo/run", json={"name": "proxy"}, timeout=30)
    assert r.json() == {"result": "Hello proxy!"}
    status = httpx.get(f"{proxy['typical']}/status", timeout=30)
    assert str(pipelines_dir) not in status.text and status.json()["pipelines"] == ["echo"]

    # Straight to the server: a foreign Host (DNS rebinding) or a foreign page cannot deploy.
    assert deploy(server.url, "rebound", Host="evil.example").status_code == 403
    rebinding = {"Host": f"evil.example:{server.port}", "Origin": f"http://evil.example:{server.port}"}
    assert deploy(server.url, "rebound", **rebinding).status_code == 403
    assert deploy(server.url, "page", Origin="http://evil.example").status_code == 403
    assert deploy(server.url, "fwd", **{"X-Forwarded-For": "203.0.113.5"}).status_code == 403
    assert deploy(server.url, "fwd", Forwarded="for=203.0.113.5").status_code == 403
    assert served(server.url) == ["echo"]
    assert sorted(p.name for p in pipelines_dir.iterdir() if not p.name.startswith(".")) == ["echo"]

    # A direct local request still deploys (the trust this rule narrows, not removes).
    assert deploy(server.url, "local").status_code == 200
    assert httpx.post(f"{server.url}/local/run", json={"text": "hi"}, timeout=30).json() == {"result": "hi"}


async def test_no_mcp_deploy_through_a_proxy(hayhooks_server, nginx, pipelines_dir):
    server = hayhooks_server(pipelines_dir)
    proxy = nginx(server.port)
    files = {"pipeline_wrapper.py": WRAPPER}
    client = create_mcp_http_client(headers={"Host": "127.0.0.1"})
    async with Client(streamable_http_client(f"{proxy['typical']}/mcp", http_client=client)) as mcp:
        refused = await mcp.call_tool("deploy_pipeline", {"name": "viamcp", "files": files})
        assert refused.is_error and "HAYHOOKS_ADMIN_TOKEN" in refused.content[0].text
    async with httpx.AsyncClient(timeout=30) as http:  # the MCP Origin check, through the proxy too
        r = await http.post(
            f"{proxy['typical']}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Origin": "http://evil.example", "Accept": "application/json, text/event-stream"},
        )
        assert r.status_code == 403
    async with Client(f"{server.url}/mcp") as mcp:  # the control: direct and local, it deploys
        done = await mcp.call_tool("deploy_pipeline", {"name": "direct", "files": files})
        assert not done.is_error, done.content[0].text
    assert served(server.url) == ["direct"]


def test_list_settings_from_env_reach_every_worker(hayhooks_server, pipelines_dir):
    copy_pipelines(pipelines_dir, "echo")
    env = {
        "HAYHOOKS_API_KEYS": '["first", "second"]',
        "HAYHOOKS_CORS_ALLOW_ORIGINS": "http://localhost:3000, https://app.example",
        "HAYHOOKS_CORS_EXPOSE_HEADERS": "X-Request-Id",
    }
    server = hayhooks_server(pipelines_dir, "--workers", "2", env=env)
    seen_pids: set[str] = set()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/ready").status_code == 200
        # /ready is one worker's answer: wait until the other one serves too (a slow start under load).
        wait_until(
            lambda: (
                len(w := http.get("/status", headers={"Authorization": "Bearer second"}).json()["workers"])
                == 2
                and all(x["in_sync"] for x in w)
            ),
            timeout=60,
        )
        for i in range(20):  # new connections: both workers answer some of them
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                assert fresh.post("/echo/run", json={"name": "x"}).status_code == 401
                r = fresh.post(
                    "/echo/run", json={"name": "x"}, headers={"X-API-Key": ["first", "second"][i % 2]}
                )
                assert r.status_code == 200
                admin = fresh.get("/status", headers={"Authorization": "Bearer second"}).json()
                seen_pids.add(admin["worker"])
                r = fresh.options(
                    "/v1/chat/completions",
                    headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
                )
                assert r.headers["access-control-allow-origin"] == "https://app.example"
                r = fresh.post(
                    "/echo/run",
                    json={"name": "x"},
                    headers={"Origin": "http://localhost:3000", "X-API-Key": "first"},
                )
                assert r.headers["access-control-expose-headers"] == "X-Request-Id"
            if len(seen_pids) == 2:
                break
    assert len(seen_pids) == 2, seen_pids


def test_cli_and_standalone_mcp_with_api_keys(hayhooks_server, pipelines_dir, tmp_path):
    copy_pipelines(pipelines_dir, "echo")
    keys = {"HAYHOOKS_API_KEYS": "cli-key"}
    server = hayhooks_server(pipelines_dir, env=keys)
    base = {k: v for k, v in os.environ.items() if not k.startswith("HAYHOOKS_")}
    cli = [str(Path(sys.executable).with_name("hayhooks")), "status", "--url", server.url]
    ok = subprocess.run(cli, env={**base, **keys}, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "echo" in ok.stdout, ok.stderr
    refused = subprocess.run(cli, env=base, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "HAYHOOKS_API_KEYS" in refused.stderr

    # ``hayhooks mcp run`` applies the same rules; its health checks stay open.
    port = free_port()
    log = open(tmp_path / "mcp.log", "wb")
    proc = subprocess.Popen(
        [cli[0], "mcp", "run", "--port", str(port), "--pipelines-dir", str(pipelines_dir)],
        env={**base, **keys},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/health", timeout=2).json()["ready"], timeout=90, interval=0.2)
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        assert httpx.post(f"{url}/mcp", json=listing, timeout=30).status_code == 401
        r = httpx.post(f"{url}/mcp", json=listing, headers={"Origin": "http://evil.example"}, timeout=30)
        assert r.status_code == 403
        r = httpx.post(
            f"{url}/mcp", content=b"x" * 17 * 1024 * 1024, headers={"X-API-Key": "cli-key"}, timeout=60
        )
        assert r.status_code == 413
    finally:
        stop_process(proc)
        log.close()


def _rss_kib(pid: int) -> int:
    total = 0
    for child in [pid, *child_pids(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def test_over_large_bodies_cost_no_memory(hayhooks_server, pipelines_dir):
    """Eight clients announcing and sending 50 MB at once: refused at once, memory stays flat."""
    copy_pipelines(pipelines_dir, "echo")
    server = hayhooks_server(pipelines_dir)  # default limits: 16 MiB JSON
    before = _rss_kib(server.proc.pid)
    answers: list[bytes] = []

    def send() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(
                b"POST /echo/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 50000000\r\n\r\n"
            )
            chunk = b"[" * 1_000_000
            try:
                for _ in range(50):
                    sock.sendall(chunk)
            except OSError:
                pass  # the server answered and closed: expected
            data = b""
            try:
                while True:
                    part = sock.recv(65536)
                    if not part:
                        break
                    data += part
            except OSError:
                pass
            answers.append(data)

    threads = [threading.Thread(target=send) for _ in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    growth_mib = (_rss_kib(server.proc.pid) - before) / 1024
    assert len(answers) == 8
    assert all(a.startswith(b"HTTP/1.1 413") for a in answers), [a[:80] for a in answers]
    assert growth_mib < 40, f"server grew by {growth_mib:.0f} MiB"
    assert time.monotonic() - started < 120
    ok = httpx.post(f"{server.url}/echo/run", json={"name": "after"}, timeout=30)
    assert ok.json() == {"result": "Hello after!"}
    assert json.loads(answers[0].partition(b"\r\n\r\n")[2])["detail"].startswith("Request body too large")
