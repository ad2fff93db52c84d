"""Chat Completions dialect: wrapper items → ``chat.completion.chunk`` payloads / ``chat.completion``.

Split out of ``hayhooks.openai.convert``, which keeps the pieces shared with the Responses dialect.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any, Optional

from hayhooks.openai.convert import _Common, _pieces, new_id


class ChatAccumulator(_Common):
    def __init__(self, model: str, include_usage: bool = False) -> None:
        super().__init__(model)
        self.id = new_id("chatcmpl-")
        self.include_usage = include_usage
        self._text_event: Optional[tuple[bytes, bytes]] = None

    def _chunk(self, delta: dict[str, Any], finish_reason: Optional[str] = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }

    def text_event(self, text: str) -> bytes:
        """The SSE message of a text-only chunk, encoded once per stream as a template: the same
        bytes ``json.dumps`` of ``_chunk({"content": text})`` gives, at a fraction of the cost."""
        self.text.append(text)
        if self._text_event is None:
            marker = "\u0000hayhooks\u0000"
            encoded = json.dumps(self._chunk({"content": marker}))
            before, after = encoded.split(json.dumps(marker))
            self._text_event = (b"data: " + before.encode(), after.encode() + b"\r\n\r\n")
        head, tail = self._text_event
        return head + encode_basestring_ascii(text).encode() + tail

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
            usage_chunk["usage"] = self.usage or {
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
            }
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
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self.final_finish_reason(),
                    "logprobs": None,
                }
            ],
            "usage": self.usage,
        }
