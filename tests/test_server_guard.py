"""The server's edge over real loopback HTTP (uvicorn in a thread): API keys, size limits, CORS,
the MCP ``Origin`` check, refusals that give nothing away, and ``/status`` for non-admins."""

from __future__ import annotations

import json
import socket

import httpx
import openai
import pytest
from conftest import BROKEN_PIPELINES, copy_pipelines
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ECHO_WRAPPER = (
    "from hayhooks import BasePipelineWrapper\n"
    "class PipelineWrapper(BasePipelineWrapper):\n"
    "    def setup(self) -> None:\n        pass\n"
    "    def run_api(self, text: str) -> str:\n        return text\n"
)
PREFLIGHT = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}


def deploy_body(name: str = "fresh") -> dict:
    return {"name": name, "files": {"pipeline_wrapper.py": ECHO_WRAPPER}}


def gives_nothing_away(response: httpx.Response, *secrets: str) -> None:
    """A refusal in JSON without a traceback or any of ``secrets`` (absolute paths)."""
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    assert "Traceback" not in response.text and 'File "' not in response.text
    for secret in secrets:
        assert secret not in response.text


# -- API keys --------------------------------------------------------------------------------------
@pytest.fixture
def keyed(live_app, pipelines_dir):
    copy_pipelines(pipelines_dir, "echo")
    return live_app(pipelines_dir, api_keys=["k1", "k2"], admin_token="adm")


def test_api_keys_guard_every_serving_route(keyed):
    with httpx.Client(base_url=keyed.url, timeout=30) as http:
        for path in ("/health", "/ready", "/docs", "/openapi.json", "/redoc"):
            assert http.get(path).status_code == 200, path
        refused = http.post("/echo/run", json={"name": "x"})
        assert refused.status_code == 401 and "X-API-Key" in refused.json()["detail"]
        assert refused.headers["www-authenticate"] == "Bearer"
        for headers in ({"Authorization": "Bearer k1"}, {"X-API-Key": "k2"}, {"Authorization": "Bearer adm"}):
            assert http.post("/echo/run", json={"name": "x"}, headers=headers).status_code == 200
        for headers in ({"Authorization": "Bearer k3"}, {"X-API-Key": "k1 2"}, {"Authorization": "Basic k1"}):
            assert http.post("/echo/run", json={"name": "x"}, headers=headers).status_code == 401
        non_ascii = http.post("/echo/run", json={"name": "x"}, headers={"Authorization": b"Bearer \xe9\xff"})
        assert non_ascii.status_code == 401
        gives_nothing_away(non_ascii)
        for method, path in [
            ("GET", "/status"),
            ("GET", "/status/echo"),
            ("GET", "/draw/echo"),
            ("GET", "/nowhere"),
            ("POST", "/mcp"),
            ("GET", "/sse"),
            ("POST", "/messages/"),
        ]:
            r = http.request(method, path)
            assert r.status_code == 401 and "detail" in r.json(), (method, path)
        for path in ("/v1/models", "/models", "/v1/chat/completions", "/chat/completions", "/responses"):
            r = http.request("GET" if "models" in path else "POST", path)
            assert r.status_code == 401, path
            assert r.json()["error"]["type"] == "authentication_error"
            assert r.json()["error"]["code"] == "invalid_api_key"
        assert http.get("/status", headers={"X-API-Key": "k1"}).status_code == 200
        # An API key never deploys; the admin token does.
        for headers in ({"Authorization": "Bearer k1"}, {"X-API-Key": "k1"}, {"X-API-Key": "adm"}):
            assert http.post("/deploy-files", json=deploy_body(), headers=headers).status_code == 401
        assert http.post("/undeploy/echo", headers={"Authorization": "Bearer k1"}).status_code == 401
        ok = http.post("/deploy-files", json=deploy_body(), headers={"Authorization": "Bearer adm"})
        assert ok.status_code == 200, ok.text
        schema = http.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of HAYHOOKS_API_KEYS",
    }
    assert schemes["APIKeyBearer"]["scheme"] == "bearer" and "AdminToken" in schemes
    assert schema["paths"]["/echo/run"]["post"]["security"] == [{"APIKeyBearer": []}, {"APIKeyHeader": []}]
    assert schema["paths"]["/v1/models"]["get"]["security"] == [{"APIKeyBearer": []}, {"APIKeyHeader": []}]
    assert schema["paths"]["/deploy-files"]["post"]["security"] == [{"AdminToken": []}]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_openai_client_uses_the_key(keyed):
    good = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="k2", max_retries=0)
    assert good.models.list().data == []  # echo has no chat method: no models, but allowed
    bad = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"


async def test_mcp_client_needs_the_key(keyed):
    headers = {"X-API-Key": "k1"}
    url = f"{keyed.url}/mcp"
    async with Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))) as c:
        assert "echo" in {t.name for t in (await c.list_tools()).tools}
    async with httpx.AsyncClient() as http:
        r = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401


def test_docs_protected_on_request(live_app, pipelines_dir):
    server = live_app(pipelines_dir, api_keys="k", protect_docs=True)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers={"X-API-Key": "k"}).status_code == 200, path
        assert http.get("/health").status_code == 200 and http.get("/ready").status_code == 200


# -- size limits, hostile bodies ---------------------------------------------------------------------
@pytest.fixture
def small_limits(live_app, pipelines_dir):
    copy_pipelines(pipelines_dir, "echo", "upload")
    return live_app(pipelines_dir, max_request_bytes=100_000, max_upload_bytes=300_000)


def test_bodies_over_the_limits_are_413(small_limits, pipelines_dir):
    with httpx.Client(base_url=small_limits.url, timeout=30) as http:
        big = json.dumps({"name": "x" * 200_000})
        r = http.post("/echo/run", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "HAYHOOKS_MAX_REQUEST_BYTES" in r.json()["detail"]
        assert "100000" in r.json()["detail"]
        r = http.post("/v1/chat/completions", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        r = http.post("/deploy-files", json={"name": "x", "files": {"pipeline_wrapper.py": "#" * 200_000}})
        assert r.status_code == 413
        assert not (pipelines_dir / "x").exists()

        def chunks():  # no Content-Length: counted as it streams in
            for _ in range(30):
                yield b" " * 10_000

        r = http.post("/echo/run", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "HAYHOOKS_MAX_REQUEST_BYTES" in r.json()["detail"]
        # Multipart has its own, larger limit.
        r = http.post("/upload/run", files={"files": ("a.bin", b"x" * 200_000)})
        assert r.status_code == 200 and r.json()["result"]["files"] == {"a.bin": 200_000}
        r = http.post("/upload/run", files={"files": ("a.bin", b"x" * 400_000)})
        assert r.status_code == 413 and "HAYHOOKS_MAX_UPLOAD_BYTES" in r.json()["detail"]
        assert http.post("/echo/run", json={"name": "still here"}).json() == {"result": "Hello still here!"}


def test_declared_length_is_refused_before_the_body_is_sent(small_limits):
    """Headers only, 50 MB announced: the 413 arrives without waiting for (or reading) any body."""
    with socket.create_connection(("127.0.0.1", small_limits.port), timeout=30) as sock:
        sock.sendall(
            b"POST /echo/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"connection: close" in head.lower()
    assert b"50000000 bytes sent" in body


def test_hostile_bodies_get_4xx_json(small_limits, tmp_path):
    secret = str(tmp_path)
    deep = "[" * 50_000 + "]" * 50_000
    with httpx.Client(base_url=small_limits.url, timeout=30) as http:
        cases = [
            http.post("/echo/run", content='{"name": "x", "times": ' + deep + "}"),
            http.post("/v1/chat/completions", content='{"model": "echo", "messages": ' + deep + "}"),
            http.post("/deploy-files", content='{"name": "x", "files": ' + deep + "}"),
            http.post("/upload/run", data={"options": "[" * 5_000 + "]" * 5_000}),
            http.post(
                "/echo/run", content=b'{"name": "\xff\xfe"}', headers={"content-type": "application/json"}
            ),
            http.post(
                "/v1/chat/completions", content=b"\xff\xfe{", headers={"content-type": "application/json"}
            ),
            http.post("/deploy-files", content=b"\xff\xfe{", headers={"content-type": "application/json"}),
            http.post(
                "/deploy-files",
                json={"name": "x", "files": {"a" * 300 + ".py": "", "pipeline_wrapper.py": ""}},
            ),
            http.post("/deploy-files", json={"name": "x", "files": {"/".join(["d" * 250] * 8): ""}}),
            http.post("/upload/run", files={"files": ("n" * 5_000 + ".txt", b"x")}),
            http.post("/deploy-files", json={"name": "x" * 50_000, "files": {"pipeline_wrapper.py": ""}}),
        ]
        for i, r in enumerate(cases):
            assert 400 <= r.status_code < 500, (i, r.status_code, r.text[:300])
            gives_nothing_away(r, secret)
            assert len(r.content) < 5_000, (i, len(r.content))
        # A 422 never echoes a big input back.
        r = http.post("/echo/run", json={"times": 2, "junk": "y" * 90_000})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["name"]
        assert len(r.content) < 2_000
        r = http.post("/echo/run", json={"name": ["z" * 90_000]})
        assert r.status_code == 422 and len(r.content) < 2_000
        r = http.post("/deploy-files", json={"name": "x", "files": "w" * 90_000})  # FastAPI's own 422
        assert r.status_code == 422 and len(r.content) < 2_000 and "90000 characters" in r.text
        small = http.post("/echo/run", json={"times": "many", "name": "x"})  # small inputs stay as they are
        assert small.json()["detail"][0]["input"] == "many"
        assert http.post("/echo/run", json={"name": "ok"}).status_code == 200


# -- CORS ------------------------------------------------------------------------------------------
def test_cors_defaults_open_serving_routes_but_never_deploys(live_app, pipelines_dir):
    copy_pipelines(pipelines_dir, "echo")
    server = live_app(pipelines_dir)
    local_page = {"origin": "http://localhost:3000", **PREFLIGHT}
    evil = {"origin": "http://evil.example", **PREFLIGHT}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.options(
            "/v1/chat/completions",
            headers={**local_page, "access-control-request-headers": "authorization,content-type"},
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "*"
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        assert r.headers["access-control-max-age"] == "600"
        assert (
            http.post("/echo/run", json={"name": "x"}, headers={"origin": "http://a.example"}).headers[
                "access-control-allow-origin"
            ]
            == "*"
        )
        for path in ("/deploy-files", "/deploy_files", "/deploy-yaml", "/deploy", "/undeploy/echo"):
            for page in (evil, local_page):
                r = http.options(path, headers=page)
                assert "access-control-allow-origin" not in r.headers, path
                assert r.status_code >= 400
        for content_type in (
            "application/json",
            "text/plain",
        ):  # forged: a "simple" request needs no preflight
            r = http.post(
                "/deploy-files",
                content=json.dumps(deploy_body("forged")),
                headers={"origin": "http://evil.example", "content-type": content_type},
            )
            assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        r = http.post("/undeploy/echo", headers={"origin": "http://evil.example"})
        assert r.status_code == 403
        r = http.post(
            "/deploy-files", json=deploy_body("frompage"), headers={"origin": "http://localhost:3000"}
        )
        assert r.status_code == 403  # another site on this machine is still another site
        names = http.get("/status").json()["pipelines"]
        assert names == ["echo"]
        # The server's own pages (same origin, e.g. /docs) may deploy on a local server.
        own = http.post("/deploy-files", json=deploy_body("fromdocs"), headers={"origin": server.url})
        assert own.status_code == 200, own.text


def test_deploy_cors_needs_a_named_origin_and_a_token(live_app, pipelines_dir):
    server = live_app(
        pipelines_dir,
        admin_token="adm",
        cors_allow_origins="https://admin.example, *",
        cors_allow_origin_regex=r"https://.*\.example",
    )
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.options("/deploy-files", headers={"origin": "https://admin.example", **PREFLIGHT})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://admin.example"
        for origin in ("https://other.example", "http://evil.example"):  # via '*' or the regex: no
            r = http.options("/deploy-files", headers={"origin": origin, **PREFLIGHT})
            assert "access-control-allow-origin" not in r.headers
            r = http.post(
                "/deploy-files", json=deploy_body(), headers={"origin": origin, "Authorization": "Bearer adm"}
            )
            assert r.status_code == 403
        r = http.post(
            "/deploy-files",
            json=deploy_body(),
            headers={"origin": "https://admin.example", "Authorization": "Bearer adm"},
        )
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://admin.example"


def test_listed_origin_without_token_gets_no_deploy_cors(live_app, pipelines_dir):
    server = live_app(pipelines_dir, cors_allow_origins=["http://localhost:3000"])
    with httpx.Client(base_url=server.url, timeout=30) as http:
        r = http.options("/deploy-files", headers={"origin": "http://localhost:3000", **PREFLIGHT})
        assert "access-control-allow-origin" not in r.headers
        r = http.options("/v1/models", headers={"origin": "http://localhost:3000", **PREFLIGHT})
        assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
        r = http.options("/v1/models", headers={"origin": "http://elsewhere.example", **PREFLIGHT})
        assert "access-control-allow-origin" not in r.headers


# -- MCP transports ---------------------------------------------------------------------------------
async def test_mcp_transports_validate_origin(live_app, pipelines_dir):
    copy_pipelines(pipelines_dir, "echo")
    server = live_app(pipelines_dir)
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for method, path in (("POST", "/mcp"), ("GET", "/sse"), ("POST", "/messages/")):
            r = await http.request(method, path, json=init, headers={"origin": "http://evil.example"})
            assert r.status_code == 403, (path, r.text)
            assert "HAYHOOKS_CORS_ALLOW_ORIGINS" in r.json()["detail"]
        r = await http.options("/mcp", headers={"origin": "http://evil.example", **PREFLIGHT})
        assert "access-control-allow-origin" not in r.headers
        r = await http.options("/mcp", headers={"origin": "http://localhost:6274", **PREFLIGHT})
        assert r.headers["access-control-allow-origin"] == "http://localhost:6274"
        assert (
            "mcp-session-id" in r.headers.get("access-control-expose-headers", "").lower()
            or r.status_code == 200
        )
    # A page on this machine may use the tools, but not deploy through them.
    headers = {"Origin": "http://localhost:6274"}
    url = f"{server.url}/mcp"
    async with Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))) as c:
        assert "echo" in {t.name for t in (await c.list_tools()).tools}
        refused = await c.call_tool("deploy_pipeline", {"name": "viaweb", "files": deploy_body()["files"]})
        assert refused.is_error and "web pages" in refused.content[0].text
    for headers in ({"X-Forwarded-For": "203.0.113.7"}, {"X-Real-IP": "203.0.113.7"}):
        async with Client(
            streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
        ) as c:
            refused = await c.call_tool(
                "deploy_pipeline", {"name": "viaproxy", "files": deploy_body()["files"]}
            )
            assert refused.is_error and "HAYHOOKS_ADMIN_TOKEN" in refused.content[0].text
            status = json.loads((await c.call_tool("get_all_pipeline_statuses", {})).content[0].text)
            assert str(pipelines_dir) not in json.dumps(status) and status["pipelines"] == ["echo"]
    assert not (pipelines_dir / "viaweb").exists() and not (pipelines_dir / "viaproxy").exists()


# -- /status for non-admins --------------------------------------------------------------------------
def test_status_details_only_for_admins(live_app, pipelines_dir):
    copy_pipelines(pipelines_dir, "echo")
    copy_pipelines(pipelines_dir, "setup_raises", source=BROKEN_PIPELINES)
    server = live_app(pipelines_dir, admin_token="adm")
    secret = str(pipelines_dir)
    proxied = {"X-Forwarded-For": "203.0.113.7"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        local = http.get("/status").json()  # genuinely local: an admin
        assert secret in json.dumps(local) and local["failed"][0]["error"]
        for headers in (proxied, {"Host": "evil.example"}, {**proxied, "Authorization": "Bearer wrong"}):
            public = http.get("/status", headers=headers)
            gives_nothing_away(public, secret, local["worker"])
            body = public.json()
            assert body["status"] == "Up!" and body["pipelines"] == ["echo"]
            assert body["details"] == [
                {"name": "echo", "type": "wrapper", "capabilities": ["run"], "description": "Greet someone."}
            ]
            assert body["failed"] == [{"name": "setup_raises", "status": "failed"}]
            one = http.get("/status/echo", headers=headers)
            gives_nothing_away(one, secret)
            assert one.json()["capabilities"] == ["run"]
        admin = http.get("/status", headers={**proxied, "Authorization": "Bearer adm"}).json()
        assert secret in json.dumps(admin)


def test_core_tool_names_and_newlines_are_refused(live_app, pipelines_dir):
    (pipelines_dir / "deploy_pipeline").mkdir()
    (pipelines_dir / "deploy_pipeline" / "pipeline_wrapper.py").write_text(ECHO_WRAPPER)
    server = live_app(pipelines_dir)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        status = http.get("/status").json()
        # Exposed as a load failure, never silently hidden.
        assert [f["name"] for f in status["failed"]] == ["deploy_pipeline"]
        assert "MCP core tool" in status["failed"][0]["error"]
        for name in ("echo\n", "status\n", "undeploy_pipeline", "get_pipeline_status"):
            r = http.post("/deploy-files", json=deploy_body(name))
            assert r.status_code == 422, (name, r.text)
        assert http.get("/status").json()["pipelines"] == []
    assert sorted(p.name for p in pipelines_dir.iterdir() if not p.name.startswith(".")) == [
        "deploy_pipeline"
    ]
