"""Turn whatever a run method returned into an HTTP response.

Plain values become ``{"result": ...}`` serialised by the adapter built at load time; generators
stream ``text/plain``; ``SSEStream`` streams ``text/event-stream``; a Starlette ``Response``
passes through untouched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable
from typing import Any

from pydantic_core import PydanticSerializationError
from sse_starlette import EventSourceResponse
from starlette.responses import Response, StreamingResponse

from hayhooks.pipelines.executor import Executor
from hayhooks.pipelines.models import RunSpec
from hayhooks.pipelines.signature import jsonable
from hayhooks.pipelines.sse import SSEStream

log = logging.getLogger("hayhooks")
_PREFIX, _SUFFIX = b'{"result":', b"}"


def chunk_text(item: Any) -> str:
    """Text of one streamed item: str, bytes, Haystack StreamingChunk, or JSON for data."""
    if isinstance(item, str):
        return item
    if isinstance(item, bytes):
        return item.decode("utf-8", errors="replace")
    content = getattr(item, "content", None)
    if isinstance(content, str) and hasattr(item, "meta"):
        return content
    return json.dumps(jsonable(item))


def is_stream(value: Any) -> bool:
    return isinstance(value, (Generator, AsyncGenerator))


def json_result(spec: RunSpec, result: Any) -> Response:
    try:
        payload = spec.result_adapter.dump_json(result, warnings=False)
    except (PydanticSerializationError, TypeError, ValueError):
        payload = json.dumps(jsonable(result)).encode()
    return Response(_PREFIX + payload + _SUFFIX, media_type="application/json")


def text_stream(executor: Executor, name: str, items: Iterable[Any]) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        try:
            async for item in executor.aiter(items):
                text = chunk_text(item)
                if text:
                    yield text
        except Exception as exc:
            # Headers are sent: re-raising makes the server cut the connection before the final
            # chunk, so clients see a truncated body instead of a silently "complete" one.
            log.error("Stream of pipeline '%s' failed: %s", name, exc)
            raise

    return StreamingResponse(body(), media_type="text/plain; charset=utf-8")


def sse_stream(executor: Executor, name: str, stream: SSEStream) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, Any]]:
        try:
            async for item in executor.aiter(stream.stream):
                if (
                    isinstance(item, dict)
                    and "data" in item
                    and set(item) <= {"event", "data", "id", "retry"}
                ):
                    data = item["data"]
                    yield {**item, "data": data if isinstance(data, str) else json.dumps(jsonable(data))}
                else:
                    text = chunk_text(item)
                    if text:
                        yield {"data": text}
        except Exception as exc:
            log.error("SSE stream of pipeline '%s' failed: %s", name, exc, exc_info=exc)
            yield {"event": "error", "data": json.dumps({"detail": f"{type(exc).__name__}: {exc}"})}

    return EventSourceResponse(events())


def respond(executor: Executor, name: str, spec: RunSpec, result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, SSEStream):
        return sse_stream(executor, name, result)
    if is_stream(result):
        return text_stream(executor, name, result)
    return json_result(spec, result)
