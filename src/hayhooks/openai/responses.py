"""Responses API dialect: wrapper items → named Response stream events and the ``response`` object.

Split out of ``hayhooks.openai.convert``, which keeps the pieces shared with Chat Completions.
"""

from __future__ import annotations

from typing import Any, Optional

from hayhooks.openai.convert import _Common, _pieces, new_id, responses_usage, to_plain


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
            events.append(
                self._event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                )
            )
            events.append(
                self._event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
            item["content"] = [part]
        elif item["type"] == "reasoning":
            text = item["_text"]
            part = {"type": "summary_text", "text": text}
            events.append(
                self._event(
                    "response.reasoning_summary_text.done",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    text=text,
                )
            )
            events.append(
                self._event(
                    "response.reasoning_summary_part.done",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    part=part,
                )
            )
            item["summary"] = [part]
        elif item["type"] == "function_call":
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
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
        events.append(
            self._event("response.output_item.added", output_index=len(self.output) - 1, item=public)
        )
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
                    msg = {
                        "id": new_id("msg_"),
                        "type": "message",
                        "role": "assistant",
                        "status": "in_progress",
                        "content": [],
                        "_text": "",
                    }
                    out.extend(self._open_item(msg))
                    out.append(
                        self._event(
                            "response.content_part.added",
                            item_id=msg["id"],
                            output_index=len(self.output) - 1,
                            content_index=0,
                            part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                        )
                    )
                item = self._open
                assert item is not None
                item["_text"] += piece[1]
                out.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=self.output.index(item),
                        content_index=0,
                        delta=piece[1],
                        logprobs=[],
                    )
                )
            elif kind == "reasoning":
                self.reasoning.append(piece[1])
                if self._open is None or self._open["type"] != "reasoning":
                    rs = {"id": new_id("rs_"), "type": "reasoning", "summary": [], "_text": ""}
                    out.extend(self._open_item(rs))
                    out.append(
                        self._event(
                            "response.reasoning_summary_part.added",
                            item_id=rs["id"],
                            output_index=len(self.output) - 1,
                            summary_index=0,
                            part={"type": "summary_text", "text": ""},
                        )
                    )
                item = self._open
                assert item is not None
                item["_text"] += piece[1]
                out.append(
                    self._event(
                        "response.reasoning_summary_text.delta",
                        item_id=item["id"],
                        output_index=self.output.index(item),
                        summary_index=0,
                        delta=piece[1],
                    )
                )
            elif kind == "tool":
                _, local, call_id, name, args = piece
                index, starts = self._tool_delta(local, call_id, name, args)
                call = self.tool_calls[index]
                if starts or self._open is None or self._open.get("_local") != index:
                    fc = {
                        "id": new_id("fc_"),
                        "type": "function_call",
                        "call_id": call["id"],
                        "name": call["function"]["name"],
                        "arguments": "",
                        "status": "in_progress",
                        "_local": index,
                    }
                    out.extend(self._open_item(fc))
                item = self._open
                assert item is not None
                if name and not item["name"]:
                    item["name"] = name
                if args:
                    item["arguments"] += args
                    out.append(
                        self._event(
                            "response.function_call_arguments.delta",
                            item_id=item["id"],
                            output_index=self.output.index(item),
                            delta=args,
                        )
                    )
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
        events.append(
            self._event(
                "error",
                code=code,
                message=message,
                param=None,
                error={"message": message, "type": "server_error", "code": code},
            )
        )
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
