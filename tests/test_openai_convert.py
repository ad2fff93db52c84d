"""Pure conversion logic: wrapper items → chat.completion(.chunk) and Responses events; request helpers."""

from __future__ import annotations

from haystack.dataclasses import ChatMessage, ReasoningContent, StreamingChunk, ToolCall, ToolCallDelta

from hayhooks.openai.chat import ChatAccumulator
from hayhooks.openai.responses import ResponseAccumulator
from hayhooks.streaming import (
    chat_messages_from_openai_response,
    get_input_files,
    get_last_user_input_text,
    get_last_user_message,
    is_user_message,
)


def tool_delta(index: int, **kw) -> StreamingChunk:
    return StreamingChunk("", index=index, tool_calls=[ToolCallDelta(index=index, **kw)])


def test_tool_call_indices_stay_distinct_across_rounds_and_finish_reason() -> None:
    acc = ChatAccumulator("m")
    items = [
        tool_delta(0, tool_name="a", id="c1"),
        tool_delta(0, arguments='{"x":'),
        tool_delta(0, arguments="1}"),
        StreamingChunk("", finish_reason="tool_calls"),
        StreamingChunk("", finish_reason="tool_call_results"),
        tool_delta(0, tool_name="b", id="c2", arguments="{}"),  # second round reuses index 0
        StreamingChunk("", finish_reason="tool_calls"),
    ]
    chunks = [c for item in items for c in acc.feed(item)]
    deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks]
    assert [d["index"] for d in deltas] == [0, 0, 0, 1]
    assert deltas[0] == {
        "index": 0,
        "id": "c1",
        "type": "function",
        "function": {"name": "a", "arguments": ""},
    }
    assert "id" not in deltas[1] and deltas[1]["function"] == {"arguments": '{"x":'}
    final = acc.finish()
    assert final[0]["choices"][0]["finish_reason"] == "tool_calls"
    message = acc.completion()["choices"][0]["message"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]] == [
        ("c1", "a", '{"x":1}'),
        ("c2", "b", "{}"),
    ]
    assert message["content"] is None


def test_finish_reason_mapping_and_usage() -> None:
    acc = ChatAccumulator("m", include_usage=True)
    acc.feed(StreamingChunk("hi", meta={"usage": {"prompt_tokens": 2, "completion_tokens": 3}}))
    acc.feed(StreamingChunk("", finish_reason="tool_call_results"))
    final, usage = acc.finish()
    assert final["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 3,
        "total_tokens": 5,
    }
    acc = ChatAccumulator("m")
    acc.feed(StreamingChunk("cut", finish_reason="length"))
    assert acc.finish()[0]["choices"][0]["finish_reason"] == "length"
    assert acc.completion()["usage"] is None
    # a ChatMessage result
    acc = ChatAccumulator("m")
    acc.feed(ChatMessage.from_assistant("done", meta={"usage": {"prompt_tokens": 1, "completion_tokens": 1}}))
    assert acc.completion()["choices"][0]["message"]["content"] == "done"
    assert acc.completion()["usage"]["total_tokens"] == 2


def test_response_events_in_order() -> None:
    acc = ResponseAccumulator("m", {"instructions": "be brief"})
    events = acc.start()
    for item in [
        StreamingChunk("", index=0, reasoning=ReasoningContent(reasoning_text="hm")),
        "Hel",
        "lo",
        tool_delta(0, tool_name="f", id="c1", arguments='{"a":1}'),
    ]:
        events += acc.feed(item)
    events += acc.finish()
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    final = events[-1][1]["response"]
    assert final["instructions"] == "be brief" and final["status"] == "completed"
    assert [o["type"] for o in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["output"][1]["content"][0]["text"] == "Hello"
    assert final["output"][2]["arguments"] == '{"a":1}' and final["output"][2]["call_id"] == "c1"
    assert not any(k.startswith("_") for o in final["output"] for k in o)


def test_request_helpers() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "look at"}, {"type": "image_url", "image_url": {}}],
        },
        {"role": "tool", "content": "x"},
    ]
    assert get_last_user_message(messages) == "look at"
    assert get_last_user_message([{"role": "system", "content": "s"}]) is None
    assert is_user_message(messages[0]) and not is_user_message(messages[1])
    assert (
        is_user_message(ChatMessage.from_user("u"))
        and get_last_user_message([ChatMessage.from_user("u")]) == "u"
    )

    items = [
        {"type": "message", "role": "developer", "content": "rules"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "read it"},
                {"type": "input_file", "file_id": "file-1"},
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "read", "arguments": '{"path": "a"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "content of a"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "it says a"}]},
    ]
    assert get_last_user_input_text(items) == "read it"
    assert get_last_user_input_text("plain") == "plain"
    assert get_input_files(items) == [{"type": "input_file", "file_id": "file-1"}]
    converted = chat_messages_from_openai_response(items)
    assert [m.role.value for m in converted] == ["system", "user", "assistant", "tool", "assistant"]
    assert converted[2].tool_calls == [ToolCall(tool_name="read", arguments={"path": "a"}, id="c1")]
    assert converted[3].tool_call_result.result == "content of a"
    assert converted[3].tool_call_result.origin.tool_name == "read"
    assert converted[4].text == "it says a"
    assert [m.text for m in chat_messages_from_openai_response("hi")] == ["hi"]


def test_pre_encoded_text_chunks_are_the_bytes_of_the_general_path():
    import json

    from haystack.dataclasses import StreamingChunk

    from hayhooks.openai.chat import ChatAccumulator
    from hayhooks.openai.convert import plain_text

    acc = ChatAccumulator("m")
    for text in ["tok ", 'quote " newline \n backslash \\', "é 😀"]:
        assert plain_text(StreamingChunk(content=text)) == text
        expected = f"data: {json.dumps(acc._chunk({'content': text}))}\r\n\r\n".encode()
        assert acc.text_event(text) == expected
    assert acc.completion()["choices"][0]["message"]["content"].startswith("tok quote")
    # Anything more than text takes the general path.
    assert plain_text(StreamingChunk(content="x", finish_reason="stop")) is None
    assert plain_text(StreamingChunk(content="x", meta={"usage": {"prompt_tokens": 1}})) is None
    assert plain_text(StreamingChunk(content="")) is None
    assert plain_text({"content": "x"}) is None
