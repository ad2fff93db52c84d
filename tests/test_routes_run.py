"""POST /{name}/run through the real app: models from signatures, streaming, uploads, errors."""

from __future__ import annotations

import json

from conftest import copy_pipelines


async def test_sync_wrapper_runs_with_typed_fields(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "echo"))
    r = await client.post("/echo/run", json={"name": "Ada", "times": 2})
    assert r.status_code == 200
    assert r.json() == {"result": "Hello Ada!Hello Ada!"}


async def test_missing_and_wrong_fields_are_422_and_server_keeps_serving(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "echo"))
    missing = await client.post("/echo/run", json={"times": 2})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["name"]
    wrong = await client.post("/echo/run", json={"name": "x", "times": "many"})
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["times"]
    garbage = await client.post(
        "/echo/run", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422
    assert (await client.post("/echo/run", json={"name": "ok"})).json() == {"result": "Hello ok!"}


async def test_async_method_wins_and_runs_on_the_loop(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "async_echo"))
    r = await client.post("/async_echo/run", json={"text": "hi", "tags": ["a"]})
    body = r.json()["result"]
    assert body["via"] == "async" and body["tags"] == ["a"]
    assert not body["thread"].startswith("hayhooks-run")


async def test_sync_method_runs_on_the_thread_pool(app_client, pipelines_dir, tmp_path):
    folder = pipelines_dir / "where"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(
        "import threading\nfrom hayhooks import BasePipelineWrapper\n"
        "class PipelineWrapper(BasePipelineWrapper):\n"
        "    def setup(self): pass\n"
        "    def run_api(self) -> str:\n        return threading.current_thread().name\n"
    )
    client = await app_client(pipelines_dir)
    assert (await client.post("/where/run", json={})).json()["result"].startswith("hayhooks-run")


async def test_haystack_documents_in_and_out(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "retrieval"))
    extra = {"content": "Extra doc", "id": "x1", "meta": {"k": "v"}}
    r = await client.post("/retrieval/run", json={"query": "capital of France", "top_k": 1, "extra": [extra]})
    assert r.status_code == 200, r.text
    docs = r.json()["result"]
    assert "Paris" in docs[0]["content"]
    assert docs[1]["id"] == "x1" and docs[1]["k"] == "v"  # Document.to_dict() flattens meta


async def test_chat_messages_in_to_dict_shape(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "chat_input"))
    messages = [
        {"role": "system", "content": [{"text": "be loud"}]},
        {"role": "user", "content": [{"text": "hi there"}]},
    ]
    r = await client.post("/chat_input/run", json={"messages": messages})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["content"] == [{"text": "HI THERE"}]
    assert r.json()["result"]["role"] == "assistant"


async def test_untyped_result_is_serialised(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "untyped"))
    r = await client.post("/untyped/run", json={"value": [1, "a"]})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["value"] == [1, "a"]
    assert r.json()["result"]["doc"]["content"] == "d"


async def test_generator_streams_text_plain(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "stream_text"))
    async with client.stream("POST", "/stream_text/run", json={"count": 4}) as r:
        assert r.headers["content-type"].startswith("text/plain")
        chunks = [c async for c in r.aiter_text()]
    assert "".join(chunks) == "chunk-0;chunk-1;chunk-2;chunk-3;"


def _sse_events(text: str) -> list[dict]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event = {}
        for line in block.split("\n"):
            if line.startswith("event:"):
                event["event"] = line[6:].strip()
            elif line.startswith("data:"):
                event["data"] = line[5:].strip()
        if event:
            events.append(event)
    return events


async def test_sse_stream_and_error_event(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "stream_sse"))
    r = await client.post("/stream_sse/run", json={"count": 2})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(r.text)
    assert [json.loads(e["data"]) for e in events[:2]] == [{"n": 0}, {"n": 1}]
    assert events[2] == {"event": "done", "data": "bye"}

    r = await client.post("/stream_sse/run", json={"count": 3, "fail_at": 1})
    events = _sse_events(r.text)
    assert json.loads(events[0]["data"]) == {"n": 0}
    assert events[-1]["event"] == "error"
    assert "boom at 1" in json.loads(events[-1]["data"])["detail"]


async def test_multipart_upload_with_json_form_fields(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "upload"))
    files = [
        ("files", ("a.txt", b"hello", "text/plain")),
        ("files", ("b.bin", b"\x00\x01\x02", "application/octet-stream")),
    ]
    data = {"options": json.dumps({"lang": "en", "n": 2}), "label": "123"}
    r = await client.post("/upload/run", files=files, data=data)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {
        "files": {"a.txt": 5, "b.bin": 3},
        "options": {"lang": "en", "n": 2},
        "label": "123",
    }
    # JSON without files still works for the same pipeline.
    r = await client.post("/upload/run", json={"options": {"x": 1}})
    assert r.json()["result"] == {"files": {}, "options": {"x": 1}, "label": ""}


async def test_headers_parameter_receives_request_headers(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "headers"))
    r = await client.post("/headers/run", json={"key": "x-tenant"}, headers={"X-Tenant": "acme"})
    assert r.json() == {"result": "acme"}
    schema = (await client.get("/openapi.json")).json()
    request_schema = schema["components"]["schemas"]["HeadersRunRequest"]
    assert "headers" not in request_schema["properties"]


async def test_response_passes_through(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "response_passthrough"))
    r = await client.post("/response_passthrough/run", json={"text": "raw"})
    assert r.status_code == 201 and r.text == "raw" and r.headers["x-custom"] == "yes"


async def test_pipeline_error_is_500_json_with_component(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "fails_at_run", "echo"))
    r = await client.post("/fails_at_run/run", json={"text": "x"})
    assert r.status_code == 500
    body = r.json()
    assert "exploder" in body["detail"] and "cannot handle" in body["detail"]
    assert body.get("component") == "exploder"
    assert "traceback" not in body
    assert (await client.post("/echo/run", json={"name": "still"})).status_code == 200


async def test_tracebacks_only_when_enabled(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "fails_at_run"), show_tracebacks=True)
    body = (await client.post("/fails_at_run/run", json={"text": "x"})).json()
    assert "Traceback" in body["traceback"]


async def test_unknown_pipeline_is_404(app_client, pipelines_dir):
    client = await app_client(pipelines_dir)
    r = await client.post("/nope/run", json={})
    assert r.status_code == 404 and r.json()["detail"] == "Pipeline 'nope' not found"
    assert r.json()["request_id"] == r.headers["x-request-id"]


async def test_helper_modules_with_same_name_do_not_collide(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "helpers_a", "helpers_b"))
    assert (await client.post("/helpers_a/run", json={})).json() == {"result": "a"}
    assert (await client.post("/helpers_b/run", json={})).json() == {"result": "b"}


async def test_yaml_pipeline_inputs_outputs(app_client, pipelines_dir):
    client = await app_client(copy_pipelines(pipelines_dir, "qa.yml"))
    r = await client.post("/qa/run", json={"question": "Why?", "signature": "me"})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert set(result) == {"prompt", "final"}
    assert result["prompt"].startswith("Question: Why?")
    assert result["final"].endswith("(signed me)")
    missing = await client.post("/qa/run", json={"signature": "me"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["question"]


def test_text_stream_failure_is_visible_to_the_client(live_app, pipelines_dir):
    """Headers are gone when a text/plain stream fails: the server cuts the body short, so the
    client sees an incomplete response instead of a silently "complete" truncated one."""
    import httpx

    folder = pipelines_dir / "breaks"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(
        "from hayhooks import BasePipelineWrapper\n"
        "class PipelineWrapper(BasePipelineWrapper):\n"
        "    def setup(self): pass\n"
        "    def run_api(self, fail: bool = True):\n"
        "        def chunks():\n"
        "            yield 'one;'\n"
        "            if fail:\n"
        "                raise RuntimeError('midway')\n"
        "            yield 'two;'\n"
        "        return chunks()\n"
    )
    server = live_app(pipelines_dir)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/breaks/run", json={"fail": False}).text == "one;two;"
        received = []
        try:
            with client.stream("POST", "/breaks/run", json={"fail": True}) as r:
                for text in r.iter_text():
                    received.append(text)
            outcome = "complete"
        except httpx.RemoteProtocolError:
            outcome = "cut"
        assert outcome == "cut" and "".join(received) == "one;"
        assert client.get("/health").status_code == 200


async def test_admission_bound_answers_503_instead_of_queueing_forever(app_client, pipelines_dir):
    import asyncio

    folder = pipelines_dir / "slow"
    folder.mkdir()
    (folder / "pipeline_wrapper.py").write_text(
        "import threading\nfrom hayhooks import BasePipelineWrapper\n"
        "GATE = threading.Event()\n"
        "class PipelineWrapper(BasePipelineWrapper):\n"
        "    def setup(self): pass\n"
        "    def run_api(self, release: bool = False) -> str:\n"
        "        if release:\n            GATE.set()\n            return 'released'\n"
        "        GATE.wait(30)\n        return 'done'\n"
    )
    copy_pipelines(pipelines_dir, "async_echo")
    # 1 thread + 1 waiting run admitted; a third sync run is refused at once.
    client = await app_client(pipelines_dir, thread_pool_size=1, max_queued_runs=1)
    held = [asyncio.create_task(client.post("/slow/run", json={})) for _ in range(2)]
    await asyncio.sleep(0.3)
    refused = await client.post("/slow/run", json={"release": True})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["detail"]
    # Async runs do not use the pool and are not refused.
    assert (await client.post("/async_echo/run", json={"text": "hi"})).status_code == 200
    # Release the gate from outside the pool, then everything held completes.
    import sys

    module = next(
        m
        for name, m in sys.modules.items()
        if name.startswith("hayhooks_pipeline_slow") and hasattr(m, "GATE")
    )
    module.GATE.set()
    assert [r.json()["result"] for r in await asyncio.gather(*held)] == ["done", "done"]
    assert (await client.post("/slow/run", json={"release": True})).status_code == 200


async def test_the_run_route_goes_first_but_never_shadows_a_fixed_route(app_client, pipelines_dir):
    """``/{name}/run`` is matched before every other route (routing cost), yet declines reserved
    names: ``POST /undeploy/run`` still undeploys a pipeline called "run"."""
    copy_pipelines(pipelines_dir, "echo")
    (pipelines_dir / "echo").rename(pipelines_dir / "run")
    client = await app_client(pipelines_dir)
    assert (await client.post("/run/run", json={"name": "Ada"})).json() == {"result": "Hello Ada!"}
    app_routes = client.app.router.routes  # type: ignore[attr-defined]
    assert getattr(app_routes[0], "path", None) == "/{name}/run"
    undeployed = await client.post("/undeploy/run")
    assert undeployed.status_code == 200, undeployed.text
    assert (await client.post("/run/run", json={"name": "Ada"})).status_code == 404
    refused = await client.post("/status/run", json={})
    assert refused.status_code in (404, 405)  # a fixed first segment is never a pipeline
