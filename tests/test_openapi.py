"""``/openapi.json`` from the registry: names that look alike, nested models, streams, error answers."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import copy_pipelines

from hayhooks.server.openapi import schema_namespace

# Four names that CamelCase / snake_case folding would merge, each with a field and result of its own.
LOOKALIKES = {"my-pipe": "dash", "my_pipe": "under", "MyPipe": "camel", "mypipe": "flat"}


def _write(folder: Path, source: str) -> None:
    folder.mkdir(parents=True)
    (folder / "pipeline_wrapper.py").write_text(textwrap.dedent(source))


def _lookalike(name: str, field: str) -> str:
    return f'''
        from pydantic import BaseModel

        from hayhooks import BasePipelineWrapper


        class Out_{field}(BaseModel):
            {field}_out: str


        class PipelineWrapper(BasePipelineWrapper):
            def setup(self) -> None:
                pass

            def run_api(self, {field}: str) -> Out_{field}:
                """Pipeline {name}."""
                return Out_{field}({field}_out={field})
    '''


def _shop(field: str) -> str:
    """A pipeline defining its own nested model called ``Item``."""
    return f"""
        from pydantic import BaseModel

        from hayhooks import BasePipelineWrapper


        class Item(BaseModel):
            {field}: str


        class PipelineWrapper(BasePipelineWrapper):
            def setup(self) -> None:
                pass

            def run_api(self, item: Item, extra: list[Item] | None = None) -> Item:
                return item
    """


def _resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/"), ref
    return doc["components"]["schemas"][ref.removeprefix("#/components/schemas/")]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _run_op(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["paths"][f"/{name}/run"]["post"]


def test_schema_namespace_is_one_to_one():
    names = ["my-pipe", "my_pipe", "MyPipe", "mypipe", "my__pipe", "a1", "a_1", "A1", "v_2", "echo", "Echo"]
    assert len({schema_namespace(n) for n in names}) == len(names)
    assert schema_namespace("my_pipe") == "MyPipe" and schema_namespace("echo") == "Echo"


@pytest.mark.e2e
def test_lookalike_names_and_nested_models_keep_their_own_schemas(hayhooks_server, pipelines_dir):
    for name, field in LOOKALIKES.items():
        _write(pipelines_dir / name, _lookalike(name, field))
    _write(pipelines_dir / "shop_a", _shop("sku"))
    _write(pipelines_dir / "shop_b", _shop("title"))
    server = hayhooks_server(pipelines_dir)
    doc = httpx.get(f"{server.url}/openapi.json", timeout=30).json()

    seen_requests, seen_responses = set(), set()
    for name, field in LOOKALIKES.items():
        op = _run_op(doc, name)
        request_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        response_ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert list(_resolve(doc, request_ref)["properties"]) == [field], name
        result = _resolve(doc, response_ref)["properties"]["result"]
        assert list(_resolve(doc, result["$ref"])["properties"]) == [f"{field}_out"], name
        seen_requests.add(request_ref)
        seen_responses.add(response_ref)
    assert len(seen_requests) == len(seen_responses) == 4

    operation_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert {_run_op(doc, n)["operationId"] for n in LOOKALIKES} == {f"run_{n}" for n in LOOKALIKES}

    items = {}
    for shop, field in (("shop_a", "sku"), ("shop_b", "title")):
        request = _resolve(
            doc, _run_op(doc, shop)["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        )
        item_ref = request["properties"]["item"]["$ref"]
        assert list(_resolve(doc, item_ref)["properties"]) == [field]
        # The list of the same model points at the same component.
        extra = request["properties"]["extra"]["anyOf"][0]["items"]["$ref"]
        assert extra == item_ref
        items[shop] = item_ref
    assert items["shop_a"] != items["shop_b"]

    # Every reference in the document resolves.
    for ref in _refs(doc):
        _resolve(doc, ref)

    # The server validates by the same models the document shows.
    ok = httpx.post(f"{server.url}/shop_a/run", json={"item": {"sku": "s1"}}, timeout=30)
    assert ok.status_code == 200 and ok.json() == {"result": {"sku": "s1"}}
    wrong = httpx.post(f"{server.url}/shop_b/run", json={"item": {"sku": "s1"}}, timeout=30)
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["item", "title"]
    for name, field in LOOKALIKES.items():
        r = httpx.post(f"{server.url}/{name}/run", json={field: name}, timeout=30)
        assert r.json() == {"result": {f"{field}_out": name}}


async def test_streaming_runs_are_documented_as_streams(app_client, pipelines_dir):
    names = ("stream_text", "stream_sse", "response_passthrough", "echo", "upload", "helpers_a")
    client = await app_client(copy_pipelines(pipelines_dir, *names))
    doc = (await client.get("/openapi.json")).json()

    text = _run_op(doc, "stream_text")["responses"]["200"]["content"]
    assert list(text) == ["text/plain"] and text["text/plain"]["schema"]["type"] == "string"
    sse = _run_op(doc, "stream_sse")["responses"]["200"]["content"]
    assert list(sse) == ["text/event-stream"] and sse["text/event-stream"]["itemSchema"]["required"] == [
        "data"
    ]
    assert "StreamSseRunResponse" not in doc["components"]["schemas"]
    passthrough = _run_op(doc, "response_passthrough")["responses"]
    assert "200" not in passthrough and "default" in passthrough
    assert list(_run_op(doc, "echo")["responses"]["200"]["content"]) == ["application/json"]

    # What the routes answer matches.
    r = await client.post("/stream_text/run", json={"count": 2})
    assert r.headers["content-type"].startswith("text/plain")
    r = await client.post("/stream_sse/run", json={"count": 1})
    assert r.headers["content-type"].startswith("text/event-stream")


async def test_run_routes_document_their_error_answers_and_optional_bodies(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "echo", "helpers_a", "upload"))
    doc = (await client.get("/openapi.json")).json()
    echo = _run_op(doc, "echo")
    for status in ("400", "404", "413", "422", "500", "503", "504"):
        schema = echo["responses"][status]["content"]["application/json"]["schema"]
        assert _resolve(doc, schema["$ref"])["required"] == ["detail"]
    assert "Retry-After" in echo["responses"]["503"]["headers"]
    assert echo["requestBody"]["required"] is True
    # No required field: an empty body is accepted, so the document does not demand one.
    assert _run_op(doc, "helpers_a")["requestBody"]["required"] is False
    assert (await client.post("/helpers_a/run")).status_code == 200
    upload = _run_op(doc, "upload")["requestBody"]["content"]
    assert set(upload) == {"application/json", "multipart/form-data"}

    # The 404 of a lookup route and the deploy routes' answers are documented too.
    assert "404" in doc["paths"]["/status/{name}"]["get"]["responses"]
    deploy = doc["paths"]["/deploy-files"]["post"]["responses"]
    assert {"200", "401", "403", "409", "413", "422", "503", "504"} <= set(deploy)
    assert "success" in deploy["200"]["content"]["application/json"]["schema"]["properties"]
    undeploy = doc["paths"]["/undeploy/{name}"]["post"]["responses"]
    assert "404" in undeploy and "409" not in undeploy


async def test_bad_bodies_are_4xx_not_500(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "echo", "chat_input", "retrieval", "upload"))
    for body in (b"\xff~", b'{"name": "\xff"}', b"[\xff"):
        r = await client.post("/echo/run", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert "input" not in r.json()["detail"][0]  # a body that is not JSON is not echoed back
    for messages in ([[None, None]], ["text"], [{"role": "nobody", "content": "x"}]):
        r = await client.post("/chat_input/run", json={"messages": messages})
        assert r.status_code == 422, r.text
    r = await client.post("/retrieval/run", json={"query": "x", "extra": [None]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["extra", 0]
    # A part of the files field sent without a filename is still handed over as a file.
    r = await client.post("/upload/run", files={"files": (None, b"abc")})
    assert r.status_code == 200 and r.json()["result"]["files"] == {"None": 3}


async def test_docs_and_redoc_use_only_local_assets(app_client, pipelines_dir):
    from hayhooks.server.docs import assets_dir

    client = await app_client(pipelines_dir)
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = (await client.get(page)).text
        links = re.findall(r'(?:src|href|spec-url)="([^"]*)"', html) + re.findall(r"url: '([^']*)'", html)
        assert links and all(link.startswith("/") and not link.startswith("//") for link in links), links
        assert "http:" not in html and "https:" not in html
        assert f"/docs/assets/{asset}" in html and "/openapi.json" in html
    swagger = (await client.get("/docs")).text
    assert '"validatorUrl": null' in swagger  # no badge fetched from an online validator
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        r = await client.get(f"/docs/assets/{asset}")
        assert r.status_code == 200 and r.content == (assets_dir() / asset).read_bytes(), asset
    assert "SwaggerUIBundle" in (await client.get("/docs/assets/swagger-ui-bundle.js")).text
    assert (await client.get("/docs/assets/nope.js")).status_code == 404
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200


async def test_docs_links_carry_the_root_path(app_client, pipelines_dir):
    client = await app_client(pipelines_dir, root_path="/hh")
    html = (await client.get("/docs")).text
    assert "/hh/docs/assets/swagger-ui.css" in html and "'/hh/openapi.json'" in html
    assert 'spec-url="/hh/openapi.json"' in (await client.get("/redoc")).text


# -- /openapi.yaml ---------------------------------------------------------------------------------
def _yaml_doc(response: httpx.Response) -> dict[str, Any]:
    import yaml

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/yaml")
    assert "&id" not in response.text  # no anchors: every schema written out where it is used
    return yaml.safe_load(response.text)


@pytest.mark.e2e
def test_openapi_yaml_is_the_json_document_and_follows_runtime_deploys(hayhooks_server, pipelines_dir):
    from conftest import SAMPLE_PIPELINES, read_folder

    server = hayhooks_server(pipelines_dir)
    before = _yaml_doc(httpx.get(f"{server.url}/openapi.yaml", timeout=30))
    assert before == httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    assert "/echo/run" not in before["paths"] and "/deploy-files" in before["paths"]

    files = read_folder(SAMPLE_PIPELINES / "echo")
    r = httpx.post(f"{server.url}/deploy-files", json={"name": "echo", "files": files}, timeout=60)
    assert r.status_code == 200, r.text
    after = _yaml_doc(httpx.get(f"{server.url}/openapi.yaml", timeout=30))
    assert after == httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    assert after["paths"]["/echo/run"]["post"]["operationId"] == "run_echo"

    assert httpx.post(f"{server.url}/undeploy/echo", timeout=60).status_code == 200
    gone = _yaml_doc(httpx.get(f"{server.url}/openapi.yaml", timeout=30))
    assert "/echo/run" not in gone["paths"]


async def test_openapi_yaml_keeps_the_root_path_and_hidden_deploy_routes(app_client, pipelines_dir):
    client = await app_client(
        copy_pipelines(pipelines_dir, "echo"), root_path="/hh", disable_runtime_deploy=True
    )
    doc = _yaml_doc(await client.get("/openapi.yaml"))
    assert doc == (await client.get("/openapi.json")).json()
    assert doc["servers"] == [{"url": "/hh"}]
    assert "/echo/run" in doc["paths"]
    assert not any(path.startswith(("/deploy", "/undeploy")) for path in doc["paths"])


async def test_openapi_yaml_is_a_docs_route_for_api_keys(app_client, pipelines_dir):
    open_docs = await app_client(pipelines_dir, api_keys=["k1"])
    doc = _yaml_doc(await open_docs.get("/openapi.yaml"))  # docs stay open unless protected
    assert doc == (await open_docs.get("/openapi.json")).json()
    assert "APIKeyBearer" in doc["components"]["securitySchemes"]

    protected = await app_client(pipelines_dir, api_keys=["k1"], protect_docs=True)
    assert (await protected.get("/openapi.yaml")).status_code == 401
    keyed = _yaml_doc(await protected.get("/openapi.yaml", headers={"X-API-Key": "k1"}))
    assert keyed["paths"]["/status"]["get"]["security"] == [{"APIKeyBearer": []}, {"APIKeyHeader": []}]


def test_openapi_yaml_is_no_pipeline_name():
    from hayhooks.errors import InvalidInput
    from hayhooks.pipelines.names import validate_name

    for name in ("openapi.yaml", "OpenAPI.yaml", "openapi.json"):
        with pytest.raises(InvalidInput):
            validate_name(name)
