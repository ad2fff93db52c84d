"""Open WebUI event helpers: 2.x names, the wire shape Open WebUI reads, and how the chat route sends them."""

from __future__ import annotations

import json

from haystack.dataclasses import StreamingChunk

from hayhooks import open_webui
from hayhooks.openai.chat import ChatAccumulator
from hayhooks.streaming import PipelineEvent, is_event


def test_event_payloads() -> None:
    assert open_webui.create_status_event("Working", done=False).to_event_dict() == {
        "type": "status",
        "data": {"description": "Working", "done": False, "hidden": False},
    }
    assert (
        open_webui.create_status_event("Hidden", done=True, hidden=True).to_event_dict()["data"]["hidden"]
        is True
    )
    assert open_webui.create_message_event("more").to_event_dict() == {
        "type": "message",
        "data": {"content": "more"},
    }
    assert open_webui.create_replace_event("all").to_event_dict() == {
        "type": "replace",
        "data": {"content": "all"},
    }
    assert open_webui.create_notification_event("Saved", "success").to_event_dict() == {
        "type": "notification",
        "data": {"type": "success", "content": "Saved"},
    }
    assert open_webui.create_notification_event("Hi").to_event_dict()["data"]["type"] == "info"
    source = {"source": {"name": "doc"}, "document": ["text"], "metadata": [{"source": "http://x"}]}
    assert open_webui.create_source_event(source).to_event_dict() == {"type": "source", "data": source}
    assert open_webui.create_chat_title_event("T").to_event_dict() == {
        "type": "chat:title",
        "data": {"title": "T"},
    }
    event = open_webui.create_status_event("x")
    assert (
        isinstance(event, PipelineEvent) and isinstance(event, open_webui.OpenWebUIEvent) and is_event(event)
    )
    assert json.loads(json.dumps(event.to_dict())) == event.to_event_dict()


def test_details_tag_is_a_collapsible_block() -> None:
    tag = open_webui.create_details_tag("weather", "Result of weather", "sunny")
    assert (
        tag
        == '<details type="weather" done="true">\n<summary>Result of weather</summary>\n\nsunny\n</details>\n\n'
    )
    assert 'type="a&quot;b"' in open_webui.create_details_tag('a"b', "s", "c")


def test_events_are_sent_as_event_messages_between_chunks() -> None:
    acc = ChatAccumulator("m")
    out = []
    for item in [
        "Hel",
        open_webui.create_status_event("half way"),
        StreamingChunk("lo"),
        {"event": {"type": "status", "data": {"description": "raw"}}},
        PipelineEvent(type="custom", data={"k": 1}),
    ]:
        out.extend(acc.feed(item))
    assert out[1] == {
        "event": {"type": "status", "data": {"description": "half way", "done": False, "hidden": False}}
    }
    assert out[3] == {"event": {"type": "status", "data": {"description": "raw"}}}
    assert out[4] == {"event": {"type": "custom", "data": {"k": 1}}}
    assert [o["choices"][0]["delta"]["content"] for o in (out[0], out[2])] == ["Hel", "lo"]
    assert acc.completion()["choices"][0]["message"]["content"] == "Hello"  # events are not content
