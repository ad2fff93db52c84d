"""A Hayhooks 2.x setup switched to this server, unchanged: deploy answers, the standalone MCP probe,
2.x tool arguments, 2.x deploy flags, messages that point to the fix.

Real ``hayhooks run`` / ``hayhooks mcp run`` subprocesses, the CLI as subprocesses, and the official
``httpx`` / ``mcp`` clients.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from _server import HayhooksServer, clean_env, free_port, hayhooks_command, run_cli
from mcp import Client

pytestmark = pytest.mark.e2e

TESTS = Path(__file__).resolve().parent.parent
COMPAT = TESTS / "fixtures" / "compat"
GREET_YAML = (TESTS / "fixtures" / "cli" / "greet.yml").read_text()
ECHO = (TESTS / "fixtures" / "pipelines" / "echo" / "pipeline_wrapper.py").read_text()


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def status_of(url: str, name: str) -> dict:
    details = httpx.get(f"{url}/status", timeout=30).json()["details"]
    return next(d for d in details if d["name"] == name)


def run_route(url: str, pipeline: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/{pipeline}/run", json=body, timeout=60)


# -- 1. deploy answers ----------------------------------------------------------------------------------
def test_every_deploy_route_answers_with_name_success_and_endpoint(tmp_path):
    """Scripts of 2.x setups read ``endpoint`` from the answer and call it."""
    yaml_text = GREET_YAML
    calls = {
        "/deploy-files": {"name": "a_files", "files": {"pipeline_wrapper.py": ECHO}},
        "/deploy_files": {"name": "b_files", "files": {"pipeline_wrapper.py": ECHO}},
        # Every field of 2.x's request, nulls included (its models made them optional).
        "/deploy-yaml": {
            "name": "c_yaml",
            "source_code": yaml_text,
            "overwrite": False,
            "description": None,
            "skip_mcp": None,
            "save_file": None,
        },
        "/deploy": {"name": "d_legacy", "source_code": yaml_text},
    }
    with HayhooksServer(tmp_path / "pipelines", workdir=tmp_path) as server:
        for route, body in calls.items():
            answer = httpx.post(f"{server.url}{route}", json=body, timeout=60)
            assert answer.status_code == 200, (route, answer.text)
            data = answer.json()
            name = body["name"]
            assert data["name"] == name and data["success"] is True
            assert data["endpoint"] == f"/{name}/run"
            run = httpx.post(
                f"{server.url}{data['endpoint']}", json={"name": "Ada", "question": "ok?"}, timeout=60
            )
            assert run.status_code == 200, run.text


# -- 6. deploy-files --description / --skip-mcp, seen by every worker and after a restart ---------------
def test_deploy_files_description_and_skip_mcp_reach_every_worker_and_survive_a_restart(tmp_path):
    pipelines = tmp_path / "pipelines"
    folder = tmp_path / "described"
    shutil.copytree(COMPAT / "described", folder)
    with HayhooksServer(pipelines, workdir=tmp_path, args=("--workers", "2")) as server:
        ok(
            run_cli(
                "pipeline",
                "deploy-files",
                str(folder),
                "--name",
                "described",
                "--description",
                "Greets people, politely",
                "--url",
                server.url,
                cwd=tmp_path,
            )
        )
        ok(
            run_cli(
                "pipeline",
                "deploy-files",
                str(folder),
                "-n",
                "hidden_one",
                "--skip-mcp",
                "--url",
                server.url,
                cwd=tmp_path,
            )
        )
        # Every worker (requests land on either) reports what the deploy said.
        for _ in range(12):
            assert status_of(server.url, "described")["description"] == "Greets people, politely"
            assert status_of(server.url, "hidden_one")["skip_mcp"] is True
            assert status_of(server.url, "described")["skip_mcp"] is False
        openapi = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
        assert openapi["paths"]["/described/run"]["post"]["description"] == "Greets people, politely"
        assert openapi["paths"]["/hidden_one/run"]["post"]["description"] == "The docstring description."
        tools = _mcp_tools(f"{server.url}/mcp")
        assert tools["described"].description == "Greets people, politely"
        assert "hidden_one" not in tools
        assert run_route(server.url, "described", {"name": "Bo"}).json()["result"] == "Hi Bo"
    # The flags live with the files: a restarted server still honours them.
    with HayhooksServer(pipelines, workdir=tmp_path) as again:
        assert status_of(again.url, "described")["description"] == "Greets people, politely"
        assert status_of(again.url, "hidden_one")["skip_mcp"] is True
        assert "hidden_one" not in _mcp_tools(f"{again.url}/mcp")


def _mcp_tools(url: str) -> dict:
    import anyio

    async def fetch() -> dict:
        async with Client(url) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    return anyio.run(fetch)


# -- 7. deploy-yaml --description wins over the YAML's; --skip-mcp for YAML ------------------------------
def test_deploy_yaml_description_overrides_the_yaml_and_skip_mcp_is_honoured(tmp_path):
    source = tmp_path / "greet.yml"
    source.write_text("# a comment that stays\n" + GREET_YAML.rstrip("\n") + "\ndescription: From the file\n")
    with HayhooksServer(tmp_path / "pipelines", workdir=tmp_path) as server:
        ok(
            run_cli(
                "pipeline",
                "deploy-yaml",
                str(source),
                "-n",
                "greet",
                "--description",
                "From the flag",
                "--skip-mcp",
                "--url",
                server.url,
                cwd=tmp_path,
            )
        )
        info = status_of(server.url, "greet")
        assert info["description"] == "From the flag" and info["skip_mcp"] is True
        openapi = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
        assert openapi["paths"]["/greet/run"]["post"]["description"] == "From the flag"
        assert "greet" not in _mcp_tools(f"{server.url}/mcp")
        saved = (tmp_path / "pipelines" / "greet.yml").read_text()
        assert "# a comment that stays" in saved and "From the file" not in saved
        # `pipeline deploy`, which 2.1 kept only to say it was gone, deploys the YAML.
        ok(run_cli("pipeline", "deploy", str(source), "-n", "greet_again", "--url", server.url, cwd=tmp_path))
        assert status_of(server.url, "greet_again")["description"] == "From the file"


# -- 6. HAYHOOKS_FILES_TO_IGNORE_PATTERNS -----------------------------------------------------------------
def test_deploy_files_leaves_out_ignored_files(tmp_path):
    folder = tmp_path / "described"
    shutil.copytree(COMPAT / "described", folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "pipeline_wrapper.cpython-311.pyc").write_bytes(b"\x00\x01bytecode")
    (folder / "native.so").write_bytes(b"\x7fELF\x00\x00")  # binary: would be refused if read
    (folder / "pkg.egg-info").mkdir()
    (folder / "pkg.egg-info" / "PKG-INFO").write_text("Name: pkg\n")
    (folder / "debug.log").write_text("noise\n")
    pipelines = tmp_path / "pipelines"
    with HayhooksServer(pipelines, workdir=tmp_path) as server:
        # The 2.x default patterns: caches, native modules and egg metadata are not sent.
        ok(run_cli("pipeline", "deploy-files", str(folder), "-n", "plain", "--url", server.url, cwd=tmp_path))
        stored = {p.relative_to(pipelines / "plain").as_posix() for p in (pipelines / "plain").rglob("*")}
        assert {"pipeline_wrapper.py", "helper.txt", "debug.log"} <= stored
        assert not any(".so" in p or "egg-info" in p or "__pycache__" in p for p in stored), stored
        # Set as 2.x sets it (a JSON list), the setting replaces the defaults.
        patterns = json.dumps(["*.log", "*.so", "*.pyc", "__pycache__", "*.egg-info"])
        env = {"HAYHOOKS_FILES_TO_IGNORE_PATTERNS": patterns}
        ok(
            run_cli(
                "pipeline",
                "deploy-files",
                str(folder),
                "-n",
                "nolog",
                "--url",
                server.url,
                cwd=tmp_path,
                env=env,
            )
        )
        assert not (pipelines / "nolog" / "debug.log").exists()
        assert (pipelines / "nolog" / "helper.txt").exists()
        assert run_route(server.url, "nolog", {"name": "Cy"}).json()["result"] == "Hi Cy"


def test_the_server_leaves_ignored_files_out_of_what_it_receives(tmp_path):
    env = {"HAYHOOKS_FILES_TO_IGNORE_PATTERNS": "*.md, build"}
    pipelines = tmp_path / "pipelines"
    with HayhooksServer(pipelines, workdir=tmp_path, env=env) as server:
        files = {
            "pipeline_wrapper.py": ECHO,
            "README.md": "# notes\n",
            "build/leftover.py": "raise SystemExit('must not ship')\n",
            "prompts/hello.txt": "hello\n",
        }
        answer = httpx.post(f"{server.url}/deploy-files", json={"name": "tidy", "files": files}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert (pipelines / "tidy" / "prompts" / "hello.txt").exists()
        assert not (pipelines / "tidy" / "README.md").exists()
        assert not (pipelines / "tidy" / "build").exists()


# -- 6. HAYHOOKS_USE_HTTPS / HAYHOOKS_DISABLE_SSL -----------------------------------------------------------
@pytest.fixture
def tls_server(tmp_path):
    """``hayhooks.server.app:app`` under uvicorn with a self-signed certificate (a subprocess)."""
    from conftest import require_binary

    openssl = require_binary("openssl", "openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    log = open(tmp_path / "tls.log", "wb")
    proc = subprocess.Popen(
        [str(Path(hayhooks_command()[0]).with_name("uvicorn")), "hayhooks.server.app:app"]
        + [
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ssl-keyfile",
            str(key),
            "--ssl-certfile",
            str(cert),
        ],
        env=clean_env(HAYHOOKS_PIPELINES_DIR=str(pipelines)),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "tls.log").read_text()
            try:
                if httpx.get(f"https://127.0.0.1:{port}/ready", verify=False, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "tls.log").read_text()
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        log.close()


def test_cli_reaches_an_https_server_as_2x_configures_it(tls_server, tmp_path):
    where = {"HAYHOOKS_HOST": "127.0.0.1", "HAYHOOKS_PORT": str(tls_server)}
    https_unverified = {**where, "HAYHOOKS_USE_HTTPS": "true", "HAYHOOKS_DISABLE_SSL": "true"}
    body = json.loads(ok(run_cli("status", "--json", cwd=tmp_path, env=https_unverified)))
    assert body["ready"] is True
    # A scheme-less --url follows HAYHOOKS_USE_HTTPS too.
    ok(run_cli("status", "--url", f"127.0.0.1:{tls_server}", cwd=tmp_path, env=https_unverified))
    # Certificates are checked unless HAYHOOKS_DISABLE_SSL says otherwise: a self-signed one fails.
    verified = run_cli("status", cwd=tmp_path, env={**where, "HAYHOOKS_USE_HTTPS": "true"})
    assert verified.returncode != 0 and "certificate" in verified.stderr.lower(), verified.stderr
    assert "Traceback" not in verified.stderr
    # Plain http to a TLS port does not get an answer either.
    assert run_cli("status", cwd=tmp_path, env=where).returncode != 0


# -- 7. runtime deploys disabled ------------------------------------------------------------------------------
def test_disabled_runtime_deploy_hides_the_routes_and_the_cli_does_not_suggest_a_token(tmp_path):
    env = {"HAYHOOKS_DISABLE_RUNTIME_DEPLOY": "true"}
    folder = tmp_path / "described"
    shutil.copytree(COMPAT / "described", folder)
    with HayhooksServer(tmp_path / "pipelines", workdir=tmp_path, env=env) as server:
        paths = httpx.get(f"{server.url}/openapi.json", timeout=30).json()["paths"]
        assert not [p for p in paths if p.startswith(("/deploy", "/undeploy"))], sorted(paths)
        refused = httpx.post(
            f"{server.url}/deploy-files",
            json={"name": "x", "files": {"pipeline_wrapper.py": ECHO}},
            timeout=30,
        )
        assert refused.status_code == 403 and "HAYHOOKS_DISABLE_RUNTIME_DEPLOY" in refused.json()["detail"]
        result = run_cli(
            "pipeline", "deploy-files", str(folder), "-n", "x", "--url", server.url, cwd=tmp_path
        )
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "runtime deploys turned off" in result.stderr
        assert "token" not in result.stderr.lower().replace("no token helps", "")
        assert "HAYHOOKS_ADMIN_TOKEN" not in result.stderr


# -- 7. YAML allowlist message ------------------------------------------------------------------------------
def test_a_yaml_refused_by_the_allowlist_names_the_setting(tmp_path):
    yaml_text = (
        "components:\n  thing:\n    type: mymod.things.Thing\n    init_parameters: {}\n"
        "connections: []\ninputs:\n  q: thing.q\noutputs:\n  a: thing.a\n"
    )
    with HayhooksServer(tmp_path / "pipelines", workdir=tmp_path) as server:
        answer = httpx.post(
            f"{server.url}/deploy-yaml", json={"name": "evil", "source_code": yaml_text}, timeout=60
        )
        assert answer.status_code == 422
        detail = answer.json()["detail"]
        assert "HAYHOOKS_YAML_ALLOWED_MODULES" in detail and "mymod.things" in detail
        assert "Traceback" not in detail


# -- 7. --root-path ------------------------------------------------------------------------------------------
def test_root_path_starts_without_a_deprecation_warning(tmp_path):
    with HayhooksServer(tmp_path / "pipelines", workdir=tmp_path, args=("--root-path", "/api")) as server:
        openapi = httpx.get(f"{server.url}/openapi.json", timeout=30)  # the proxy strips /api
        assert openapi.status_code == 200
        assert {"url": "/api"} in openapi.json().get("servers", [])
        log = server.log()
    assert "Deprecat" not in log, log


# -- 6. the short flags of 2.x ------------------------------------------------------------------------------
def test_run_takes_the_short_flags_of_2x(tmp_path):
    port = free_port()
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "greet.yml").write_text(GREET_YAML)
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*hayhooks_command(), "run", "-h", "127.0.0.1", "-p", str(port), "-d", str(pipelines), "-w", "1"],
            env=clean_env(),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            assert httpx.get(f"http://127.0.0.1:{port}/status", timeout=10).json()["pipelines"] == ["greet"]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
    assert "Show this message" in ok(run_cli("run", "--help", cwd=tmp_path))


# -- 2 and 3. standalone MCP server ------------------------------------------------------------------------------
@contextmanager
def mcp_run(pipelines: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path / "mcp.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            # The 2.x short flags, --json-response (-j) and --debug.
            [
                *hayhooks_command(),
                "mcp",
                "run",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-d",
                str(pipelines),
                "-j",
                "--debug",
            ],
            env=clean_env(),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{base}/status", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            yield base
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)


async def test_standalone_mcp_server_answers_the_2x_probe_and_takes_2x_tool_arguments(tmp_path):
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "greet.yml").write_text(GREET_YAML)
    with mcp_run(pipelines, tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            probe = await http.get("/status")
            assert probe.status_code == 200 and probe.json() == {"status": "ok"}
            assert (await http.get("/health")).json()["status"] == "ok"
        async with Client(f"{base}/mcp") as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            for name in ("get_pipeline_status", "undeploy_pipeline"):
                schema = tools[name].input_schema
                assert schema["required"] == ["pipeline_name"] and "pipeline_name" in schema["properties"]
            assert set(tools["deploy_pipeline"].input_schema["properties"]) == {
                "name",
                "files",
                "overwrite",
                "save_files",
            }
            by_2x = await client.call_tool("get_pipeline_status", {"pipeline_name": "greet"})
            assert by_2x.is_error is False and by_2x.structured_content["name"] == "greet"
            by_name = await client.call_tool("get_pipeline_status", {"name": "greet"})
            assert by_name.structured_content["name"] == "greet"
            nameless = await client.call_tool("get_pipeline_status", {})
            assert nameless.is_error is True and "pipeline_name" in nameless.content[0].text
            deployed = await client.call_tool(
                "deploy_pipeline",
                {
                    "name": "echo",
                    "files": {"pipeline_wrapper.py": ECHO},
                    "overwrite": False,
                    "save_files": True,
                },
            )
            assert deployed.is_error is False, deployed.content
            removed = await client.call_tool("undeploy_pipeline", {"pipeline_name": "echo"})
            assert removed.is_error is False, removed.content
            gone = await client.call_tool("get_pipeline_status", {"pipeline_name": "echo"})
            assert gone.is_error is True and "not found" in gone.content[0].text
            assert "Traceback (most recent call last)" in gone.content[0].text  # --debug
    assert not (pipelines / "echo").exists()
