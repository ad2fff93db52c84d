"""The Responses / Chat helpers read every input shape: 2.x string content, part lists, bare strings."""

from __future__ import annotations

import pytest
from haystack.dataclasses import ChatMessage

from hayhooks import chat_messages_from_openai_response, get_input_files, get_last_user_input_text
from hayhooks.streaming import normalize_input_items

STRING_CONTENT = [{"type": "message", "role": "user", "content": "plain"}]
PART_CONTENT = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "parts"}]}]


def test_a_string_input_becomes_one_user_message_with_string_content() -> None:
    assert normalize_input_items("hello") == [{"type": "message", "role": "user", "content": "hello"}]
    assert normalize_input_items(None) == []
    with pytest.raises(ValueError, match="'input'"):
        normalize_input_items(42)


def test_a_list_is_passed_on_as_sent() -> None:
    sent = [*PART_CONTENT, "bare", {"type": "function_call_output", "call_id": "c", "output": "1"}]
    assert normalize_input_items(sent) == sent


@pytest.mark.parametrize(
    ("items", "text"),
    [(STRING_CONTENT, "plain"), (PART_CONTENT, "parts"), (["bare"], "bare"), ("just text", "just text")],
)
def test_last_user_text_from_every_shape(items, text) -> None:
    assert get_last_user_input_text(items) == text
    messages = chat_messages_from_openai_response(items)
    assert messages and messages[-1].text == text and messages[-1].role.value == "user"


def test_conversion_keeps_roles_and_tool_results_with_string_content() -> None:
    items = [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "assistant", "content": "earlier answer"},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": "x"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "found"},
        "and now?",
    ]
    messages = chat_messages_from_openai_response(items)
    assert [m.role.value for m in messages] == ["system", "assistant", "assistant", "tool", "user"]
    assert isinstance(messages[2], ChatMessage) and messages[2].tool_calls[0].arguments == {"q": "x"}
    assert messages[3].tool_call_result.result == "found"
    assert get_input_files(STRING_CONTENT) == []
