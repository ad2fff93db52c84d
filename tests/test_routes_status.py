"""Status, health/readiness, OpenAPI and drawing through the real app."""

from __future__ import annotations

from conftest import BROKEN_PIPELINES, copy_pipelines


async def test_status_keeps_compatible_shape_and_reports_failures(app_client, pipelines_dir):
    copy_pipelines(pipelines_dir, "echo", "qa.yml")
    copy_pipelines(pipelines_dir, "syntax_error", "setup_raises", "bad_inputs.yml", source=BROKEN_PIPELINES)
    client = await app_client(pipelines_dir)
    body = (await client.get("/status")).json()
    assert body["status"] == "Up!"
    assert body["pipelines"] == ["echo", "qa"]
    details = {d["name"]: d for d in body["details"]}
    assert details["echo"]["type"] == "wrapper" and details["echo"]["capabilities"] == ["run"]
    assert details["qa"]["type"] == "yaml"
    assert details["echo"]["source"].endswith("echo")
    failed = {f["name"]: f["error"] for f in body["failed"]}
    assert set(failed) == {"syntax_error", "setup_raises", "bad_inputs"}
    assert "SyntaxError" in failed["syntax_error"]
    assert "the model file is missing" in failed["setup_raises"]
    assert body["workers"][0]["in_sync"] is True
    # the good ones keep serving
    assert (await client.post("/echo/run", json={"name": "z"})).status_code == 200


async def test_status_of_one_pipeline(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "echo"))
    body = (await client.get("/status/echo")).json()
    assert body["pipeline"] == "echo" and body["description"] == "Greet someone."
    assert (await client.get("/status/missing")).status_code == 404


async def test_health_and_ready(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_openapi_lists_pipeline_models_with_descriptions(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "echo", "qa.yml", "upload", "retrieval"))
    schema = (await client.get("/openapi.json")).json()
    op = schema["paths"]["/echo/run"]["post"]
    assert op["description"] == "Greet someone."
    request = schema["components"]["schemas"]["EchoRunRequest"]
    assert request["required"] == ["name"]
    assert request["properties"]["name"]["description"] == "Who to greet."
    assert request["properties"]["times"]["default"] == 1
    assert schema["components"]["schemas"]["EchoRunResponse"]["properties"]["result"]["type"] == "string"
    qa = schema["components"]["schemas"]["QaRunRequest"]
    assert qa["required"] == ["question"]
    assert "multipart/form-data" in schema["paths"]["/upload/run"]["post"]["requestBody"]["content"]
    assert "/retrieval/run" in schema["paths"]
    assert "/{name}/run" not in schema["paths"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text


async def test_draw_returns_mermaid_offline(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "echo", "async_echo", "qa.yml"))
    r = await client.get("/draw/echo")
    assert r.status_code == 200 and "graph TD" in r.text and "greeter" in r.text
    assert "joiner" in (await client.get("/draw/qa")).text
    assert (await client.get("/draw/async_echo")).status_code == 501
    assert (await client.get("/draw/none")).status_code == 404


async def test_a_hanging_setup_does_not_keep_the_others_from_serving(app_client, pipelines_dir):
    copy_pipelines(pipelines_dir, "setup_hangs", source=BROKEN_PIPELINES)
    copy_pipelines(pipelines_dir, "echo")
    client = await app_client(pipelines_dir, setup_timeout=1)
    assert (await client.get("/ready")).status_code == 200
    assert (await client.post("/echo/run", json={"name": "x"})).status_code == 200
    failed = {f["name"]: f["error"] for f in (await client.get("/status")).json()["failed"]}
    assert "did not finish within 1s" in failed["setup_hangs"]
