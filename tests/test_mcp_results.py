"""Result conversion and deploy protection of the MCP front end (pure functions, real inputs)."""

from __future__ import annotations

import json

import pytest
from haystack import Document
from haystack.dataclasses import StreamingChunk
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from hayhooks.errors import Forbidden, PipelineNotFound, Unauthorized
from hayhooks.mcp import results
from hayhooks.mcp.tools import check_admin
from hayhooks.pipelines.sse import SSEStream
from hayhooks.settings import HayhooksSettings


class Answer(BaseModel):
    text: str
    score: float


def test_string_result_is_plain_text_without_structured_content():
    result = results.value_result("hello")
    assert [c.text for c in result.content] == ["hello"]
    assert result.structured_content is None
    assert result.is_error is False


def test_dict_result_is_json_text_and_structured_content():
    result = results.value_result({"a": 1, "nested": {"b": [1, 2]}})
    assert json.loads(result.content[0].text) == {"a": 1, "nested": {"b": [1, 2]}}
    assert result.structured_content == {"a": 1, "nested": {"b": [1, 2]}}


def test_list_result_is_wrapped_for_structured_content():
    result = results.value_result([1, "two"])
    assert json.loads(result.content[0].text) == [1, "two"]
    assert result.structured_content == {"result": [1, "two"]}


def test_pydantic_and_haystack_results_are_serialised():
    result = results.value_result(Answer(text="hi", score=0.5))
    assert result.structured_content == {"text": "hi", "score": 0.5}
    doc_result = results.value_result({"documents": [Document(id="d1", content="Paris")]})
    docs = doc_result.structured_content["documents"]
    assert docs[0]["id"] == "d1" and docs[0]["content"] == "Paris"


def test_none_result_has_no_content():
    result = results.value_result(None)
    assert result.content == [] and result.is_error is False


def test_chunk_text_of_each_streamed_item_kind():
    assert results.chunk_text("plain") == "plain"
    assert results.chunk_text(StreamingChunk(content="tok")) == "tok"
    assert results.chunk_text({"event": "message", "data": "sse"}) == "sse"
    assert json.loads(results.chunk_text({"k": 1})) == {"k": 1}
    assert results.chunk_text(None) == ""


def test_stream_kind_detects_generators_but_not_containers():
    def gen():
        yield 1

    async def agen():
        yield 1

    assert results.stream_kind(gen()) == "sync"
    assert results.stream_kind(agen()) == "async"
    assert results.stream_kind(SSEStream(gen())) == "sync"
    assert results.stream_kind(SSEStream(agen())) == "async"
    for value in ("text", [1], {"a": 1}, (1,), Answer(text="x", score=1), None, 3):
        assert results.stream_kind(value) is None


def test_error_results_carry_a_readable_message():
    assert (
        results.error_result(PipelineNotFound("Pipeline 'x' not found")).content[0].text
        == "Pipeline 'x' not found"
    )
    err = results.error_result(ValueError("n must be positive"))
    assert err.is_error is True and err.content[0].text == "ValueError: n must be positive"
    with pytest.raises(ValidationError) as info:
        Answer.model_validate({"text": "x"})
    assert results.error_message(info.value) == "Invalid arguments: score: Field required"


def _request(host: str, authorization: str | None = None) -> Request:
    """A request that reached ``host`` from a client on the same address (loopback or not)."""
    headers = [(b"host", f"{host}:1416".encode())]
    if authorization:
        headers.append((b"authorization", authorization.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": headers,
        "server": (host, 1416),
        "client": (host, 50000),
    }
    return Request(scope)


def _settings(**kw) -> HayhooksSettings:
    return HayhooksSettings(_env_file=None, **kw)


def test_deploy_allowed_on_loopback_without_token():
    check_admin(_settings(host="127.0.0.1"), "http", _request("127.0.0.1"))


def test_deploy_refused_on_non_loopback_server_without_token():
    with pytest.raises(Forbidden):
        check_admin(_settings(host="0.0.0.0"), "http", _request("10.1.2.3"))


def test_deploy_needs_the_bearer_token_when_one_is_set():
    settings = _settings(host="0.0.0.0", admin_token="s3cret")
    with pytest.raises(Unauthorized):
        check_admin(settings, "http", _request("10.1.2.3"))
    with pytest.raises(Unauthorized):
        check_admin(settings, "http", _request("10.1.2.3", "Bearer wrong"))
    check_admin(settings, "http", _request("10.1.2.3", "Bearer s3cret"))


def test_http_call_without_request_is_treated_as_remote():
    with pytest.raises(Forbidden):
        check_admin(_settings(host="127.0.0.1"), "http", None)


def test_stdio_is_the_local_user_unless_deploys_are_disabled():
    check_admin(_settings(host="0.0.0.0", admin_token="s3cret"), "stdio", None)
    with pytest.raises(Forbidden):
        check_admin(_settings(disable_runtime_deploy=True), "stdio", None)
    with pytest.raises(Forbidden):
        check_admin(
            _settings(disable_runtime_deploy=True, admin_token="t"), "http", _request("127.0.0.1", "Bearer t")
        )
