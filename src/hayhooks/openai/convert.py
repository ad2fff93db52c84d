"""Pure conversions: what a wrapper returns → OpenAI Chat Completions / Responses payloads.

No I/O here. A wrapper result is one of: a string; a (async) iterable of items (strings, Haystack
``StreamingChunk``s, UI events, raw ``chat.completion.chunk`` dicts); a ready completion / response
(openai pydantic object or a dict in its shape); a Haystack ``ChatMessage``. The routes feed each
item to a ``ChatAccumulator`` or ``ResponseAccumulator``, which returns the payloads to send when
streaming and builds the full object when not.

This module keeps what both dialects share (ids, usage, normalised pieces, ``_Common``, error
bodies); the accumulators live in ``hayhooks.openai.chat`` and ``hayhooks.openai.responses``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Optional

from haystack.dataclasses import ChatMessage, StreamingChunk

from hayhooks.observability.context import current_request_id
from hayhooks.streaming.events import is_event

_FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter", "function_call"}


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def to_plain(value: Any) -> Any:
    """pydantic models (openai types) → dicts; everything else unchanged."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(mode="json", exclude_unset=False)
        except TypeError:  # pragma: no cover - pydantic v1 style
            return dump()
    return value


def chat_usage(raw: Any) -> Optional[dict[str, Any]]:
    """Usage from a chunk / message ``meta["usage"]`` in Chat Completions shape, or None."""
    raw = to_plain(raw)
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens", raw.get("input_tokens"))
    completion = raw.get("completion_tokens", raw.get("output_tokens"))
    if prompt is None and completion is None:
        return None
    prompt, completion = int(prompt or 0), int(completion or 0)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(raw.get("total_tokens") or prompt + completion),
    }
    for key in ("prompt_tokens_details", "completion_tokens_details"):
        if isinstance(raw.get(key), dict):
            usage[key] = raw[key]
    return usage


def responses_usage(usage: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    if usage is None:
        return None
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": usage["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage["total_tokens"],
    }


def is_ready_completion(value: Any) -> bool:
    value = to_plain(value)
    return isinstance(value, dict) and value.get("object") == "chat.completion"


def is_ready_response(value: Any) -> bool:
    value = to_plain(value)
    return isinstance(value, dict) and value.get("object") == "response"


# --------------------------------------------------------------------------------------------
# Normalised pieces: every item becomes a list of these
# --------------------------------------------------------------------------------------------
# ("text", str) | ("reasoning", str) | ("tool", local_index, id, name, args) | ("usage", dict)
# | ("finish", reason) | ("event", dict) | ("raw_chunk", dict)


def plain_text(item: Any) -> Optional[str]:
    """The text of an item that carries nothing but text (the common streamed token), else None.

    The hot path of streaming: such items skip the general piece mapping (``_pieces``).
    """
    if type(item) is StreamingChunk:
        if item.tool_calls or item.reasoning is not None or item.finish_reason:
            return None
        meta = item.meta
        if meta and (meta.get("usage") or meta.get("finish_reason")):
            return None
        return item.content or None
    if type(item) is str:
        return item or None
    return None


def _pieces(item: Any) -> list[tuple[Any, ...]]:
    if item is None:
        return []
    if isinstance(item, bytes):
        item = item.decode()
    if isinstance(item, str):
        return [("text", item)] if item else []
    if isinstance(item, StreamingChunk):
        out: list[tuple[Any, ...]] = []
        if item.reasoning is not None and item.reasoning.reasoning_text:
            out.append(("reasoning", item.reasoning.reasoning_text))
        if item.content:
            out.append(("text", item.content))
        for delta in item.tool_calls or []:
            out.append(("tool", delta.index, delta.id, delta.tool_name, delta.arguments or ""))
        usage = chat_usage((item.meta or {}).get("usage"))
        if usage:
            out.append(("usage", usage))
        reason = item.finish_reason or (item.meta or {}).get("finish_reason")
        if reason:
            out.append(("finish", reason))
        return out
    if is_event(item):
        return [("event", {"event": item.to_event_dict()})]
    if isinstance(item, ChatMessage):
        return _message_pieces(item)
    item = to_plain(item)
    if isinstance(item, dict):
        if item.get("object") == "chat.completion.chunk":
            return [("raw_chunk", item)]
        if "event" in item:
            return [("event", item)]
        if "type" in item and "data" in item:
            return [("event", {"event": item})]
        return [("text", json.dumps(item))]
    return [("text", str(item))]


def _message_pieces(message: ChatMessage) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if message.reasoning is not None and message.reasoning.reasoning_text:
        out.append(("reasoning", message.reasoning.reasoning_text))
    if message.text:
        out.append(("text", message.text))
    for i, call in enumerate(message.tool_calls):
        out.append(("tool", i, call.id or new_id("call_"), call.tool_name, json.dumps(call.arguments)))
    usage = chat_usage(message.meta.get("usage"))
    if usage:
        out.append(("usage", usage))
    if message.meta.get("finish_reason"):
        out.append(("finish", message.meta["finish_reason"]))
    return out


def completion_pieces(completion: Any) -> list[tuple[Any, ...]]:
    """A ready ``chat.completion`` as pieces (to stream it when the client asked for a stream)."""
    completion = to_plain(completion)
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    out: list[tuple[Any, ...]] = []
    if message.get("reasoning_content"):
        out.append(("reasoning", message["reasoning_content"]))
    if message.get("content"):
        out.append(("text", message["content"]))
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        out.append(("tool", i, call.get("id"), fn.get("name"), fn.get("arguments") or ""))
    usage = chat_usage(completion.get("usage"))
    if usage:
        out.append(("usage", usage))
    if choice.get("finish_reason"):
        out.append(("finish", choice["finish_reason"]))
    return out


class _Common:
    """State shared by both dialects: text, reasoning, tool calls with stream-wide indices."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.created = int(time.time())
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.usage: Optional[dict[str, Any]] = None
        self.finish_reason: Optional[str] = None
        self._local_to_global: dict[int, int] = {}

    def _tool_delta(
        self, local: int, call_id: Optional[str], name: Optional[str], args: str
    ) -> tuple[int, bool]:
        """Record a tool-call delta; return (global index, whether it starts a new call)."""
        known = self._local_to_global.get(local)
        starts = known is None or bool(
            call_id and self.tool_calls[known]["id"] and call_id != self.tool_calls[known]["id"]
        )
        if (
            known is not None
            and not starts
            and name
            and self.tool_calls[known]["function"]["name"]
            and call_id is None
        ):
            starts = True  # a new call reusing the index without an id
        if starts or known is None:
            known = len(self.tool_calls)
            self._local_to_global[local] = known
            self.tool_calls.append(
                {
                    "id": call_id or new_id("call_"),
                    "type": "function",
                    "function": {"name": name or "", "arguments": ""},
                }
            )
        call = self.tool_calls[known]
        if name and not call["function"]["name"]:
            call["function"]["name"] = name
        call["function"]["arguments"] += args
        return known, starts

    def final_finish_reason(self) -> str:
        reason = self.finish_reason
        if reason == "tool_call_results":
            reason = "stop"
        if reason == "tool_calls" and not self.tool_calls:
            reason = "stop"
        if reason not in _FINISH_REASONS:
            reason = "tool_calls" if (self.tool_calls and not self.text) else "stop"
        return reason


def error_body(message: str, type_: str = "server_error", code: Optional[str] = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"message": message, "type": type_, "code": code, "param": None}}
    request_id = current_request_id()
    if request_id is not None:
        body["error"]["request_id"] = request_id
    return body
