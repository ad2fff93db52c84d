"""The Responses API ``input`` reaches wrappers in the shape Hayhooks 2.x wrappers read.

A real uvicorn server and the official ``openai`` client; the wrappers in tests/fixtures/compat are
written as a 2.x user writes them (``item["content"]`` read as a string).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import copy_pipelines
from openai import OpenAI

COMPAT = Path(__file__).parent / "fixtures" / "compat"


@pytest.fixture
def client(live_app, tmp_path: Path) -> OpenAI:
    pipelines = copy_pipelines(tmp_path / "pipelines", "responses_2x", "responses_2x_async", source=COMPAT)
    server = live_app(pipelines)
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_a_string_input_reaches_a_2x_wrapper_as_a_message_with_string_content(client):
    response = client.responses.create(model="responses_2x", input="  hello there ")
    assert response.output_text == "You said: HELLO THERE"


def test_a_string_input_streams_through_a_2x_wrapper(client):
    with client.responses.stream(model="responses_2x", input="stream me") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert text == "You said: STREAM ME"


def test_the_exact_items_an_async_wrapper_receives(client):
    from_string = client.responses.create(model="responses_2x_async", input="hi")
    assert json.loads(from_string.output_text) == [{"type": "message", "role": "user", "content": "hi"}]

    sent = [
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "parts"}]},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"},
    ]
    from_list = client.responses.create(model="responses_2x_async", input=sent)  # type: ignore[arg-type]
    assert json.loads(from_list.output_text) == sent  # passed on as the client sent it


def test_a_2x_wrapper_reading_content_as_a_string_is_served_by_list_input_with_string_content(client):
    response = client.responses.create(
        model="responses_2x", input=[{"type": "message", "role": "user", "content": "from a list"}]
    )
    assert response.output_text == "You said: FROM A LIST"


def test_chat_and_responses_methods_that_declare_headers_receive_them(live_app, tmp_path: Path) -> None:
    pipelines = copy_pipelines(tmp_path / "pipelines", "chat_headers", "responses_2x", source=COMPAT)
    server = live_app(pipelines)
    client = OpenAI(
        base_url=f"{server.url}/v1",
        api_key="unused",
        max_retries=0,
        timeout=60,
        default_headers={"X-User": "ada"},
    )
    chat = client.chat.completions.create(
        model="chat_headers", messages=[{"role": "user", "content": "why?"}]
    )
    assert chat.choices[0].message.content == "ada asks: why?"
    assert client.responses.create(model="chat_headers", input="x").output_text == "ada via responses"
    # A method written without `headers` is called as before.
    assert client.responses.create(model="responses_2x", input="ok").output_text == "You said: OK"
