"""The OpenAI-compatible API driven by the official ``openai`` client over real HTTP (uvicorn)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from conftest import copy_pipelines, free_port, wait_until
from fixtures import fake_chat
from haystack import Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.dataclasses import ChatMessage
from haystack.utils import Secret
from openai import OpenAI

from hayhooks.server.app import create_app
from hayhooks.settings import HayhooksSettings

OPENAI_PIPELINES = Path(__file__).parent / "fixtures" / "openai_pipelines"
CHAT_PIPELINES = [
    "chat_sync",
    "chat_async",
    "chat_text",
    "tool_calls",
    "agent_events",
    "failing",
    "forever",
    "forever_sync",
    "prebuilt",
    "plain",
    "files_a",
]


class Server:
    def __init__(self, pipelines_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(HayhooksSettings(pipelines_dir=pipelines_dir, port=self.port, log_level="warning"))
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="test-uvicorn")
        self.thread.start()
        wait_until(lambda: httpx.get(f"{self.url}/ready", timeout=2).status_code == 200, timeout=60)

    def client(self, v1: bool = True) -> OpenAI:
        return OpenAI(
            base_url=f"{self.url}/v1" if v1 else self.url, api_key="unused", max_retries=0, timeout=30
        )

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    pipelines = copy_pipelines(
        tmp_path_factory.mktemp("openai") / "pipelines", *CHAT_PIPELINES, source=OPENAI_PIPELINES
    )
    srv = Server(pipelines)
    yield srv
    srv.stop()


@pytest.fixture(params=[True, False], ids=["v1", "no-v1"])
def client(server: Server, request: pytest.FixtureRequest) -> OpenAI:
    return server.client(v1=request.param)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "be nice"}, {"role": "user", "content": text}]


# -- models --------------------------------------------------------------------------------------
def test_models_lists_chat_and_responses_pipelines_only(client: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {
        "chat_sync",
        "chat_async",
        "chat_text",
        "tool_calls",
        "agent_events",
        "prebuilt",
        "files_a",
    } <= ids
    assert "plain" not in ids
    assert client.models.retrieve("chat_sync").owned_by == "hayhooks"


# -- chat completions ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model,expected",
    [
        ("chat_sync", "Hello Ada, nice to meet you"),
        ("chat_async", "Async hello Ada"),
        ("chat_text", "Plain answer to Ada"),
        ("prebuilt", "ready made"),
    ],
)
def test_chat_completion_non_streaming(client: OpenAI, model: str, expected: str) -> None:
    completion = client.chat.completions.create(model=model, messages=ask("Ada"))
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == expected
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    if model == "chat_sync":
        assert completion.usage is not None and completion.usage.total_tokens == 12
        assert completion.choices[0].message.model_extra["reasoning_content"] == "Thinking it over"
    if model == "prebuilt":
        assert completion.id == "chatcmpl-ready" and completion.usage.total_tokens == 5


@pytest.mark.parametrize(
    "model,expected",
    [
        ("chat_sync", "Hello Ada, nice to meet you"),
        ("chat_async", "Async hello Ada"),
        ("chat_text", "Plain answer to Ada"),
        ("prebuilt", "ready made"),
    ],
)
def test_chat_completion_streaming(client: OpenAI, model: str, expected: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model, messages=ask("Ada"), stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == expected
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    if model == "chat_sync":
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
        reasoning = "".join(
            (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices
        )
        assert reasoning == "Thinking it over"
        assert chunks[-1].usage.prompt_tokens == 7 and chunks[-1].usage.total_tokens == 12


def test_tool_call_deltas_and_finish_reason(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="tool_calls", messages=ask("weather?"), stream=True))
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += (delta.function.name or "") if delta.function else ""
            call["arguments"] += (delta.function.arguments or "") if delta.function else ""
    assert [calls[i]["id"] for i in sorted(calls)] == ["call_weather", "call_time"]
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Rome"}
    assert json.loads(calls[1]["arguments"]) == {"zone": "CET"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    completion = client.chat.completions.create(model="tool_calls", messages=ask("weather?"))
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("call_weather", "get_weather", {"city": "Rome"}),
        ("call_time", "get_time", {"zone": "CET"}),
    ]


def test_agent_tool_calls_become_open_webui_events(server: Server) -> None:
    body = {"model": "agent_events", "messages": ask("weather in Rome?"), "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        datas = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    payloads = [json.loads(d) for d in datas[:-1]]
    events = [p["event"] for p in payloads if "event" in p]
    assert [e["type"] for e in events] == ["status", "status"]
    assert (
        events[0]["data"]["description"] == "Calling weather with Rome" and events[0]["data"]["done"] is False
    )
    assert events[1]["data"] == {"description": "weather done", "done": True, "hidden": False}
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads if p.get("choices"))
    assert text.startswith(
        '<details type="weather" done="true">\n<summary>Tool result</summary>\n\nsunny in Rome'
    )
    assert text.endswith("The weather: sunny in Rome")
    # the hooks intercepted the tool call chunks: the client is not asked to run the tool
    assert not any(p["choices"][0]["delta"].get("tool_calls") for p in payloads if p.get("choices"))
    assert [p["choices"][0]["finish_reason"] for p in payloads if p.get("choices")][-1] == "stop"


# -- Responses API -------------------------------------------------------------------------------
def test_responses_non_streaming(client: OpenAI) -> None:
    response = client.responses.create(model="chat_sync", input="Bob")
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "Hello Bob, nice to meet you"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].summary[0].text == "Thinking it over"
    assert response.usage.input_tokens == 7 and response.usage.total_tokens == 12

    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Cleo"}]}]
    assert client.responses.create(model="chat_text", input=items).output_text == "Plain answer to Cleo"


@pytest.mark.parametrize(
    "model,expected",
    [
        ("chat_sync", "Hello Bob, nice to meet you"),
        ("chat_async", "Async hello Bob"),
        ("chat_text", "Plain answer to Bob"),
    ],
)
def test_responses_streaming_events(client: OpenAI, model: str, expected: str) -> None:
    events = list(client.responses.create(model=model, input="Bob", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[1] == "response.in_progress"
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == expected
    assert [e.text for e in events if e.type == "response.output_text.done"] == [expected]
    assert events[-1].response.output_text == expected

    # the SDK's own accumulating helper agrees
    with client.responses.stream(model=model, input="Bob") as stream:
        final = stream.get_final_response()
    assert final.output_text == expected


def test_responses_function_calls(client: OpenAI) -> None:
    events = list(client.responses.create(model="tool_calls", input="weather?", stream=True))
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert [(i.type, i.call_id, i.name, json.loads(i.arguments)) for i in done] == [
        ("function_call", "call_weather", "get_weather", {"city": "Rome"}),
        ("function_call", "call_time", "get_time", {"zone": "CET"}),
    ]
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert deltas == json.dumps({"city": "Rome"}) + json.dumps({"zone": "CET"})
    response = client.responses.create(model="tool_calls", input="weather?")
    assert [o.name for o in response.output] == ["get_weather", "get_time"]


# -- Haystack's OpenAIChatGenerator as a client --------------------------------------------------
@pytest.mark.parametrize(
    "model,expected",
    [("chat_sync", "Hello Haystack, nice to meet you"), ("chat_async", "Async hello Haystack")],
)
def test_haystack_openai_chat_generator_streams_from_hayhooks(
    server: Server, model: str, expected: str
) -> None:
    received: list[str] = []
    generator = OpenAIChatGenerator(
        model=model,
        api_key=Secret.from_token("unused"),
        api_base_url=f"{server.url}/v1",
        streaming_callback=lambda chunk: received.append(chunk.content),
    )
    pipeline = Pipeline()
    pipeline.add_component(
        "prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{q}}")], required_variables=["q"])
    )
    pipeline.add_component("llm", generator)
    pipeline.connect("prompt.prompt", "llm.messages")
    reply = pipeline.run({"prompt": {"q": "Haystack"}})["llm"]["replies"][0]
    assert reply.text == expected
    assert "".join(received) == expected
    assert len([c for c in received if c]) > 1
    assert reply.meta["finish_reason"] == "stop"


# -- errors --------------------------------------------------------------------------------------
def test_unknown_model_is_404_in_openai_shape(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=ask("x"))
    assert err.value.status_code == 404
    assert err.value.body["code"] == "model_not_found" and "nope" in err.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="x")


def test_pipeline_without_chat_is_a_404_model_not_supported(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="plain", messages=ask("x"))
    assert err.value.status_code == 404
    assert err.value.body["type"] == "invalid_request_error" and "plain" in err.value.body["message"]
    assert err.value.body["code"] == "model_not_supported" and err.value.body["param"] == "model"
    with pytest.raises(openai.APIStatusError) as err:
        client.responses.create(model="chat_text_missing", input="x")
    assert err.value.status_code == 404
    with pytest.raises(openai.APIStatusError) as err:  # has chat but no responses method
        client.responses.create(model="agent_events", input="x")
    assert err.value.status_code == 404 and err.value.body["code"] == "model_not_supported"


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_bad_requests_are_400_in_openai_shape(server: Server, prefix: str) -> None:
    url = f"{server.url}{prefix}/chat/completions"
    cases = [
        httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}),
        httpx.post(url, json=["a list"]),
        httpx.post(url, json={"messages": ask("x")}),
        httpx.post(url, json={"model": "chat_sync"}),
        httpx.post(f"{server.url}{prefix}/responses", json={"model": "chat_sync", "input": 42}),
    ]
    for r in cases:
        assert r.status_code == 400, r.text
        assert set(r.json()["error"]) >= {"message", "type", "code"}
        assert r.json()["error"]["type"] == "invalid_request_error"


def test_error_mid_stream_is_an_error_event_then_done(server: Server) -> None:
    body = {"model": "failing", "messages": ask("x"), "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        datas = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    error = json.loads(datas[-2])["error"]
    assert error["type"] == "server_error" and "fake generator exploded" in error["message"]
    content = "".join(json.loads(d)["choices"][0]["delta"].get("content") or "" for d in datas[:-2])
    assert content == "one two "  # what was produced before the failure did reach the client

    client = server.client()
    with pytest.raises(openai.APIError) as err:
        for _ in client.chat.completions.create(model="failing", messages=ask("x"), stream=True):
            pass
    assert "fake generator exploded" in err.value.message

    with pytest.raises(openai.InternalServerError) as err:  # not streaming: a plain 500
        client.chat.completions.create(model="failing", messages=ask("x"))
    assert "fake generator exploded" in err.value.body["message"]

    events = []
    with pytest.raises(openai.APIError):
        for event in client.responses.create(model="failing", input="x", stream=True):
            events.append(event)
    assert events[-1].type == "response.failed"
    assert "fake generator exploded" in events[-1].response.error.message

    # and the server is fine afterwards
    assert client.chat.completions.create(model="chat_sync", messages=ask("Z")).choices[0].message.content


def _fake_run_threads() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if (frame := sys._current_frames().get(t.ident)) is not None and _in_fake_chat(frame)
    ]


def _in_fake_chat(frame: Any) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.endswith("fake_chat.py"):
            return True
        frame = frame.f_back
    return False


def _read_and_disconnect(url: str, model: str, chunks: int = 5) -> None:
    body = {"model": model, "messages": ask("x"), "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        got = 0
        for line in r.iter_lines():
            if line.startswith("data: ") and "tick" in line:
                got += 1
                if got >= chunks:
                    break
    # leaving the block closes the connection mid-stream


# The executor's pool and the loops' default executors (asyncio's threads are "asyncio_N", uvloop's
# "uvloop_N"): bounded pools, reused across requests.
_POOLED = ("hayhooks-run", "asyncio_", "uvloop_")


def _unpooled_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if not t.name.startswith(_POOLED))


@pytest.mark.parametrize("model", ["forever", "forever_sync"])
def test_client_disconnect_stops_the_run_and_leaks_no_thread(server: Server, model: str) -> None:
    def stopped() -> bool:
        return fake_chat.ACTIVE["runs"] == 0 and not _fake_run_threads()

    for _ in range(2):  # warm-up: pools create their threads once
        _read_and_disconnect(server.url, model)
        wait_until(stopped, timeout=20)
    baseline = threading.active_count()
    unpooled = _unpooled_threads()

    for _ in range(5):
        _read_and_disconnect(server.url, model)
        # the abandoned run ends: no thread is still inside the generator for that request
        wait_until(stopped, timeout=20)
    assert _unpooled_threads() == unpooled
    # pooled threads are reused, so the count does not grow with the number of requests
    wait_until(lambda: threading.active_count() <= baseline + 1, timeout=20)

    reply = server.client().chat.completions.create(model="chat_sync", messages=ask("again"))
    assert reply.choices[0].message.content == "Hello again, nice to meet you"
    assert httpx.get(f"{server.url}/status", timeout=5).status_code == 200


# -- files ---------------------------------------------------------------------------------------
def test_files_go_to_the_only_pipeline_that_accepts_them(client: OpenAI) -> None:
    uploaded = client.files.create(file=("notes.txt", b"hello world", "text/plain"), purpose="user_data")
    assert uploaded.id.startswith("file-a-") and uploaded.filename == "notes.txt"
    assert uploaded.bytes == 11 and uploaded.purpose == "user_data" and uploaded.object == "file"
    seen = client.chat.completions.create(model="files_a", messages=ask("what did you get?"))
    assert "notes.txt:11:user_data" in seen.choices[0].message.content


def _make_server_with(tmp_path: Path, *names: str) -> Server:
    return Server(copy_pipelines(tmp_path / "pipelines", *names, source=OPENAI_PIPELINES))


def test_files_routing_with_several_or_no_file_pipelines(tmp_path: Path) -> None:
    srv = _make_server_with(tmp_path / "two", "files_a", "files_b", "chat_text")
    try:
        client = srv.client()
        with pytest.raises(openai.BadRequestError) as err:  # never "the first": ambiguous is an error
            client.files.create(file=("x.bin", b"\x00\x01"), purpose="assistants")
        assert "files_a" in err.value.body["message"] and "files_b" in err.value.body["message"]
        by_form = client.files.create(
            file=("x.bin", b"\x00\x01"), purpose="assistants", extra_body={"model": "files_b"}
        )
        assert by_form.id.startswith("file-b-") and by_form.purpose == "assistants"
        by_query = client.files.create(
            file=("y.bin", b"abc"), purpose="user_data", extra_query={"model": "files_a"}
        )
        assert by_query.id.startswith("file-a-")
        with pytest.raises(openai.APIStatusError) as err:
            client.files.create(
                file=("y.bin", b"abc"), purpose="user_data", extra_query={"model": "chat_text"}
            )
        assert err.value.status_code == 404 and err.value.body["code"] == "model_not_supported"
        with pytest.raises(openai.NotFoundError):
            client.files.create(file=("y.bin", b"abc"), purpose="user_data", extra_query={"model": "ghost"})
        r = httpx.post(f"{srv.url}/v1/files", data={"purpose": "user_data"})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    finally:
        srv.stop()

    srv = _make_server_with(tmp_path / "none", "chat_text")
    try:
        with pytest.raises(openai.APIStatusError) as err:
            srv.client(v1=False).files.create(file=("x.txt", b"x"), purpose="user_data")
        assert err.value.status_code == 404 and "accepts file uploads" in err.value.body["message"]
    finally:
        srv.stop()
