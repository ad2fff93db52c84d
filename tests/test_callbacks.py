"""The ``default_on_*`` hooks of 2.x, importable from ``hayhooks``, driving a real Haystack Agent."""

from __future__ import annotations

from fixtures.fake_chat import FakeChatGenerator
from haystack.components.agents import Agent
from haystack.dataclasses import ChatMessage
from haystack.tools import Tool

from hayhooks import (
    PipelineEvent,
    default_on_pipeline_end,
    default_on_tool_call_end,
    default_on_tool_call_start,
    streaming_generator,
)
from hayhooks.open_webui import create_chat_completion_event


def agent() -> Agent:
    tool = Tool(
        name="weather",
        description="Weather of a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        function=lambda city: f"sunny in {city}",
    )
    generator = FakeChatGenerator(
        reply="It is {tool}", tool_calls=[{"name": "weather", "arguments": {"city": "Rome"}, "id": "call_1"}]
    )
    return Agent(chat_generator=generator, tools=[tool])


def test_the_defaults_show_a_tool_call_in_open_webui_terms() -> None:
    items = list(
        streaming_generator(
            agent(),
            pipeline_run_args={"messages": [ChatMessage.from_user("weather?")]},
            on_tool_call_start=default_on_tool_call_start,
            on_tool_call_end=default_on_tool_call_end,
        )
    )
    events = [i.to_event_dict() for i in items if isinstance(i, PipelineEvent)]
    assert [(e["type"], e["data"]["description"], e["data"]["done"]) for e in events] == [
        ("status", "Calling 'weather' tool...", False),
        ("status", "Called 'weather' tool", True),
    ]
    details = [i for i in items if isinstance(i, str) and i.startswith("<details")]
    assert len(details) == 1 and "sunny in Rome" in details[0] and "Rome" in details[0]


def test_a_failed_tool_call_is_a_hidden_status_and_an_error_toast() -> None:
    status, toast = default_on_tool_call_end("weather", {"city": "X"}, "boom", True)
    assert isinstance(status, PipelineEvent) and status.to_event_dict()["data"]["hidden"] is True
    assert toast.to_event_dict() == {
        "type": "notification",
        "data": {"type": "error", "content": "Error calling 'weather' tool"},
    }
    assert default_on_tool_call_start("", None, None) is None


def test_pipeline_end_renders_the_result_as_text() -> None:
    assert default_on_pipeline_end("done") == "done"
    assert default_on_pipeline_end({"answer": 42}) == '{"answer": 42}'
    rendered = default_on_pipeline_end({"messages": [ChatMessage.from_assistant("hi")]})
    assert '"hi"' in rendered
    assert create_chat_completion_event({"content": "x"}).to_event_dict() == {
        "type": "chat:completion",
        "data": {"content": "x"},
    }
