"""Helpers to read OpenAI-style request payloads inside wrapper methods.

``messages`` are Chat Completions messages (``{"role": ..., "content": str | list[part]}``);
``input_items`` are Responses API input items (messages, ``function_call``, ``function_call_output``).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from haystack.dataclasses import ChatMessage, ToolCall

_TEXT_PART_TYPES = ("text", "input_text", "output_text")


def _content_text(content: Any) -> str:
    """Text of a message ``content``: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") in _TEXT_PART_TYPES:
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
        return "".join(texts) if len(texts) <= 1 else "\n".join(texts)
    return str(content)


def is_user_message(message: Any) -> bool:
    """True for a user message (a dict with ``role == "user"`` or a Haystack ``ChatMessage``)."""
    if isinstance(message, ChatMessage):
        return message.role.value == "user"
    return isinstance(message, dict) and message.get("role") == "user"


def get_last_user_message(messages: list[Any]) -> Optional[str]:
    """Text of the last user message in a Chat Completions ``messages`` list, or None."""
    for message in reversed(messages or []):
        if is_user_message(message):
            if isinstance(message, ChatMessage):
                return message.text or ""
            return _content_text(message.get("content"))
    return None


def _is_input_message(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type", "message") == "message" and "role" in item


def get_last_user_input_text(input_items: list[Any] | str | None) -> Optional[str]:
    """Text of the last user message among Responses API ``input`` items, or None."""
    if isinstance(input_items, str):
        return input_items
    for item in reversed(input_items or []):
        if isinstance(item, str):
            return item
        if _is_input_message(item) and item.get("role") == "user":
            return _content_text(item.get("content"))
    return None


def get_input_files(input_items: list[Any] | None) -> list[dict[str, Any]]:
    """All ``input_file`` content parts of the Responses API ``input`` items."""
    files: list[dict[str, Any]] = []
    for item in input_items or []:
        if _is_input_message(item) and isinstance(item.get("content"), list):
            files.extend(p for p in item["content"] if isinstance(p, dict) and p.get("type") == "input_file")
    return files


def _parse_arguments(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError):
        return {"input": arguments}
    return parsed if isinstance(parsed, dict) else {"input": parsed}


def normalize_input_items(input_value: Any) -> list[dict[str, Any]]:
    """The Responses ``input`` field as a list of items.

    A bare string becomes one user message whose ``content`` is that string, the shape Hayhooks
    2.x handed to ``run_response`` (wrappers read ``item["content"]`` as text). A list is passed
    on as the client sent it; the helpers below read every item shape (string or part-list content,
    bare strings).
    """
    if input_value is None:
        return []
    if isinstance(input_value, str):
        return [_user_message(input_value)]
    if isinstance(input_value, list):
        return list(input_value)
    raise ValueError("'input' must be a string or a list of input items")


def _user_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


def chat_messages_from_openai_response(input_items: list[Any] | str | None) -> list[ChatMessage]:
    """Convert Responses API ``input`` items into Haystack ``ChatMessage`` objects.

    Messages map by role (``developer`` becomes system); consecutive ``function_call`` items become
    one assistant message with tool calls; ``function_call_output`` items become tool messages tied
    to their call. Unknown item types are skipped.
    """
    items = normalize_input_items(input_items)
    calls: dict[str, ToolCall] = {}
    result: list[ChatMessage] = []
    pending_calls: list[ToolCall] = []

    def flush_calls() -> None:
        if pending_calls:
            result.append(ChatMessage.from_assistant(tool_calls=list(pending_calls)))
            pending_calls.clear()

    for item in items:
        if isinstance(item, str):
            item = _user_message(item)
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "function_call":
            call = ToolCall(
                tool_name=item.get("name", ""),
                arguments=_parse_arguments(item.get("arguments")),
                id=item.get("call_id") or item.get("id"),
            )
            calls[call.id or ""] = call
            pending_calls.append(call)
            continue
        flush_calls()
        if kind == "function_call_output":
            call_id = item.get("call_id", "")
            origin = calls.get(call_id) or ToolCall(tool_name="", arguments={}, id=call_id)
            output = item.get("output")
            result.append(
                ChatMessage.from_tool(
                    _content_text(output) if not isinstance(output, str) else output, origin
                )
            )
        elif kind == "message" and "role" in item:
            text = _content_text(item.get("content"))
            role = item["role"]
            if role in ("system", "developer"):
                result.append(ChatMessage.from_system(text))
            elif role == "assistant":
                result.append(ChatMessage.from_assistant(text))
            else:
                result.append(ChatMessage.from_user(text))
    flush_calls()
    return result
