"""Pure conversions: what a wrapper returns → OpenAI Chat Completions / Responses payloads.

No I/O here. A wrapper result is one of: a string; a (async) iterable of items (strings, Haystack
``StreamingChunk``s, UI events, raw ``chat.completion.chunk`` dicts); a ready completion / response
(openai pydantic object or a dict in its shape); a Haystack ``ChatMessage``. The routes feed each
item to a ``ChatAccumulator`` or ``ResponseAccumulator``, which returns the payloads to send when
streaming and builds the full object when not.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Optional

from haystack.dataclasses import ChatMessage, StreamingChunk

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

    def _tool_delta(self, local: int, call_id: Optional[str], name: Optional[str], args: str) -> tuple[int, bool]:
        """Record a tool-call delta; return (global index, whether it starts a new call)."""
        known = self._local_to_global.get(local)
        starts = known is None or bool(call_id and self.tool_calls[known]["id"] and call_id != self.tool_calls[known]["id"])
        if known is not None and not starts and name and self.tool_calls[known]["function"]["name"] and call_id is None:
            starts = True  # a new call reusing the index without an id
        if starts:
            known = len(self.tool_calls)
            self._local_to_global[local] = known
            self.tool_calls.append(
                {"id": call_id or new_id("call_"), "type": "function", "function": {"name": name or "", "arguments": ""}}
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


# --------------------------------------------------------------------------------------------
# Chat Completions
# --------------------------------------------------------------------------------------------
class ChatAccumulator(_Common):
    def __init__(self, model: str, include_usage: bool = False) -> None:
        super().__init__(model)
        self.id = new_id("chatcmpl-")
        self.include_usage = include_usage

    def _chunk(self, delta: dict[str, Any], finish_reason: Optional[str] = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }

    def start(self) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def feed(self, item: Any) -> list[dict[str, Any]]:
        return self.feed_pieces(_pieces(item))

    def feed_pieces(self, pieces: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for piece in pieces:
            kind = piece[0]
            if kind == "text":
                self.text.append(piece[1])
                out.append(self._chunk({"content": piece[1]}))
            elif kind == "reasoning":
                self.reasoning.append(piece[1])
                out.append(self._chunk({"reasoning_content": piece[1]}))
            elif kind == "tool":
                _, local, call_id, name, args = piece
                index, starts = self._tool_delta(local, call_id, name, args)
                call = self.tool_calls[index]
                delta: dict[str, Any] = {"index": index, "function": {"arguments": args}}
                if starts:
                    delta.update(id=call["id"], type="function")
                    delta["function"]["name"] = call["function"]["name"]
                out.append(self._chunk({"tool_calls": [delta]}))
            elif kind == "usage":
                self.usage = piece[1]
            elif kind == "finish":
                self.finish_reason = piece[1]
            elif kind == "event":
                out.append(piece[1])
            elif kind == "raw_chunk":
                out.append(piece[1])
                for choice in piece[1].get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        self.text.append(delta["content"])
                    if choice.get("finish_reason"):
                        self.finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> list[dict[str, Any]]:
        final = self._chunk({}, self.final_finish_reason())
        if self.include_usage:
            usage_chunk = self._chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            return [final, usage_chunk]
        if self.usage:
            final["usage"] = self.usage
        return [final]

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) if self.text else None}
        if not self.text and not self.tool_calls:
            message["content"] = ""
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": self.final_finish_reason(), "logprobs": None}
            ],
            "usage": self.usage,
        }


def error_body(message: str, type_: str = "server_error", code: Optional[str] = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


# --------------------------------------------------------------------------------------------
# Responses API
# --------------------------------------------------------------------------------------------
class ResponseAccumulator(_Common):
    """Builds the named events of a streamed Response and the final Response object."""

    def __init__(self, model: str, body: dict[str, Any]) -> None:
        super().__init__(model)
        self.id = new_id("resp_")
        self.body = body
        self.output: list[dict[str, Any]] = []
        self._open: Optional[dict[str, Any]] = None  # the output item being streamed
        self._seq = 0
        self.error: Optional[dict[str, Any]] = None

    # -- envelope --------------------------------------------------------------------------------
    def response(self, status: str) -> dict[str, Any]:
        body = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.model,
            "output": [dict(item) for item in self.output],
            "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
            "tool_choice": body.get("tool_choice") or "auto",
            "tools": body.get("tools") or [],
            "instructions": body.get("instructions"),
            "metadata": body.get("metadata") or {},
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "max_output_tokens": body.get("max_output_tokens"),
            "previous_response_id": body.get("previous_response_id"),
            "text": {"format": {"type": "text"}},
            "error": self.error,
            "incomplete_details": None,
            "usage": responses_usage(self.usage),
        }

    def _event(self, event_type: str, /, **data: Any) -> tuple[str, dict[str, Any]]:
        payload = {"type": event_type, "sequence_number": self._seq, **data}
        self._seq += 1
        return event_type, payload

    def start(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            self._event("response.created", response=self.response("in_progress")),
            self._event("response.in_progress", response=self.response("in_progress")),
        ]

    # -- items -------------------------------------------------------------------------------------
    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = self.output.index(item)
        events = []
        if item["type"] == "message":
            text = item["_text"]
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            events.append(self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                      content_index=0, text=text, logprobs=[]))
            events.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                      content_index=0, part=part))
            item["content"] = [part]
        elif item["type"] == "reasoning":
            text = item["_text"]
            part = {"type": "summary_text", "text": text}
            events.append(self._event("response.reasoning_summary_text.done", item_id=item["id"],
                                      output_index=index, summary_index=0, text=text))
            events.append(self._event("response.reasoning_summary_part.done", item_id=item["id"],
                                      output_index=index, summary_index=0, part=part))
            item["summary"] = [part]
        elif item["type"] == "function_call":
            events.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                      output_index=index, name=item["name"], arguments=item["arguments"]))
        item.pop("_text", None)
        item.pop("_local", None)
        item["status"] = "completed"
        events.append(self._event("response.output_item.done", output_index=index, item=dict(item)))
        return events

    def _open_item(self, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events = self._close()
        self.output.append(item)
        self._open = item
        public = {k: v for k, v in item.items() if not k.startswith("_")}
        events.append(self._event("response.output_item.added", output_index=len(self.output) - 1, item=public))
        return events

    def feed(self, item: Any) -> list[tuple[str, dict[str, Any]]]:
        return self.feed_pieces(_pieces(item))

    def feed_pieces(self, pieces: list[tuple[Any, ...]]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for piece in pieces:
            kind = piece[0]
            if kind == "raw_chunk":
                converted: list[tuple[Any, ...]] = []
                for choice in piece[1].get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        converted.append(("text", delta["content"]))
                out.extend(self.feed_pieces(converted))
            elif kind == "text":
                self.text.append(piece[1])
                if self._open is None or self._open["type"] != "message":
                    msg = {"id": new_id("msg_"), "type": "message", "role": "assistant", "status": "in_progress",
                           "content": [], "_text": ""}
                    out.extend(self._open_item(msg))
                    out.append(self._event("response.content_part.added", item_id=msg["id"],
                                           output_index=len(self.output) - 1, content_index=0,
                                           part={"type": "output_text", "text": "", "annotations": [],
                                                 "logprobs": []}))
                item = self._open
                item["_text"] += piece[1]
                out.append(self._event("response.output_text.delta", item_id=item["id"],
                                       output_index=self.output.index(item), content_index=0,
                                       delta=piece[1], logprobs=[]))
            elif kind == "reasoning":
                self.reasoning.append(piece[1])
                if self._open is None or self._open["type"] != "reasoning":
                    rs = {"id": new_id("rs_"), "type": "reasoning", "summary": [], "_text": ""}
                    out.extend(self._open_item(rs))
                    out.append(self._event("response.reasoning_summary_part.added", item_id=rs["id"],
                                           output_index=len(self.output) - 1, summary_index=0,
                                           part={"type": "summary_text", "text": ""}))
                item = self._open
                item["_text"] += piece[1]
                out.append(self._event("response.reasoning_summary_text.delta", item_id=item["id"],
                                       output_index=self.output.index(item), summary_index=0, delta=piece[1]))
            elif kind == "tool":
                _, local, call_id, name, args = piece
                index, starts = self._tool_delta(local, call_id, name, args)
                call = self.tool_calls[index]
                if starts or self._open is None or self._open.get("_local") != index:
                    fc = {"id": new_id("fc_"), "type": "function_call", "call_id": call["id"],
                          "name": call["function"]["name"], "arguments": "", "status": "in_progress",
                          "_local": index}
                    out.extend(self._open_item(fc))
                item = self._open
                if name and not item["name"]:
                    item["name"] = name
                if args:
                    item["arguments"] += args
                    out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                           output_index=self.output.index(item), delta=args))
            elif kind == "usage":
                self.usage = piece[1]
            elif kind == "finish":
                self.finish_reason = piece[1]
            # UI events have no place in the Responses dialect: dropped.
        return out

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        events = self._close()
        events.append(self._event("response.completed", response=self.response("completed")))
        return events

    def fail(self, message: str, code: str = "server_error") -> list[tuple[str, dict[str, Any]]]:
        events = self._close()
        self.error = {"code": code, "message": message}
        events.append(self._event("response.failed", response=self.response("failed")))
        events.append(self._event("error", code=code, message=message, param=None,
                                  error={"message": message, "type": "server_error", "code": code}))
        return events

    def final(self) -> dict[str, Any]:
        """The complete Response object (non-streaming)."""
        self._close()
        return self.response("completed")


def response_pieces(response: Any) -> list[tuple[Any, ...]]:
    """A ready Response object as pieces (to stream it)."""
    response = to_plain(response)
    out: list[tuple[Any, ...]] = []
    for i, item in enumerate(response.get("output") or []):
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("text"):
                    out.append(("text", part["text"]))
        elif item.get("type") == "reasoning":
            for part in item.get("summary") or []:
                if part.get("text"):
                    out.append(("reasoning", part["text"]))
        elif item.get("type") == "function_call":
            out.append(("tool", 1000 + i, item.get("call_id"), item.get("name"), item.get("arguments") or ""))
    return out
