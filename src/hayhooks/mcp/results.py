"""Turning what a pipeline returns into MCP tool results.

A string is text; a dict, list or pydantic model is JSON text plus ``structuredContent``; chunks of a
streaming result are joined into one text; an exception is an ``isError`` result carrying its message.
"""

from __future__ import annotations

import base64
import dataclasses
import inspect
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

import mcp_types as types
from pydantic import BaseModel, ValidationError

from hayhooks.errors import HayhooksError
from hayhooks.pipelines.sse import SSEStream


def to_jsonable(value: Any) -> Any:
    """A JSON-compatible copy of ``value`` (pydantic models, dataclasses, Haystack objects included)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):  # Haystack Document, ChatMessage, Answer, ...
        try:
            return to_jsonable(to_dict())
        except Exception:
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def text_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def value_result(value: Any) -> types.CallToolResult:
    """The tool result for a finished (non-streaming) return value."""
    if isinstance(value, str):
        return text_result(value)
    if value is None:
        return types.CallToolResult(content=[])
    data = to_jsonable(value)
    if isinstance(data, str):
        return text_result(data)
    result = text_result(dumps(data))
    if isinstance(data, dict):
        result.structured_content = data
    elif isinstance(data, list):
        # structuredContent must be an object; a list is wrapped the way the HTTP API wraps results.
        result.structured_content = {"result": data}
    return result


def error_message(exc: BaseException) -> str:
    if isinstance(exc, HayhooksError):
        return exc.message
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}" for err in exc.errors()
        )
        return f"Invalid arguments: {problems}"
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def error_result(exc: BaseException, with_traceback: bool = False) -> types.CallToolResult:
    """A tool error; ``with_traceback`` (HAYHOOKS_SHOW_TRACEBACKS, ``mcp run --debug``) appends it."""
    text = error_message(exc)
    if with_traceback:
        import traceback

        text += "\n" + "".join(traceback.format_exception(exc))
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def chunk_text(chunk: Any) -> str:
    """The text one streamed item contributes (``StreamingChunk`` content, strings, JSON otherwise)."""
    if isinstance(chunk, str):
        return chunk
    if chunk is None:
        return ""
    content = getattr(chunk, "content", None)
    if isinstance(content, str) and not isinstance(chunk, dict):  # haystack StreamingChunk
        return content
    if isinstance(chunk, dict) and set(chunk) <= {"event", "data", "id"} and "data" in chunk:
        return chunk_text(chunk["data"])  # an SSEStream {"event": ..., "data": ...} item
    data = to_jsonable(chunk)
    return data if isinstance(data, str) else dumps(data)


def stream_kind(value: Any) -> str | None:
    """``"sync"`` / ``"async"`` when ``value`` is a stream to drain, else None."""
    if isinstance(value, SSEStream):
        return stream_kind(value.stream) or "sync"
    if isinstance(value, (str, bytes, bytearray, dict, list, tuple, BaseModel)):
        return None
    if inspect.isasyncgen(value) or isinstance(value, (AsyncIterator, AsyncIterable)):
        return "async"
    if inspect.isgenerator(value) or isinstance(value, Iterator):
        return "sync"
    return None


def unwrap_stream(value: Any) -> Any:
    return value.stream if isinstance(value, SSEStream) else value
