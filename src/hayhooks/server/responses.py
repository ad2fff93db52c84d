"""Turn whatever a run method returned into an HTTP response.

Plain values become ``{"result": ...}`` serialised by the adapter built at load time; streaming
results (a ``RunStream`` from the run path) stream ``text/plain``; ``SSEStream`` streams
``text/event-stream``; a Starlette ``Response`` passes through untouched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from pydantic_core import PydanticSerializationError
from sse_starlette import EventSourceResponse
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from hayhooks.errors import HayhooksError
from hayhooks.pipelines.models import RunSpec
from hayhooks.pipelines.runs import RunStream
from hayhooks.pipelines.signature import jsonable
from hayhooks.pipelines.sse import SSEStream

log = logging.getLogger("hayhooks")
_PREFIX, _SUFFIX = b'{"result":', b"}"
_SSE_KEYS = frozenset(("event", "data", "id", "retry"))


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


def json_result(spec: RunSpec, result: Any) -> Response:
    try:
        payload = spec.result_adapter.dump_json(result, warnings=False)
    except (PydanticSerializationError, TypeError, ValueError):
        payload = json.dumps(jsonable(result)).encode()
    return Response(_PREFIX + payload + _SUFFIX, media_type="application/json")


def text_stream(stream: RunStream) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        try:
            async for item in stream:
                text = chunk_text(item)
                if text:
                    yield text
        finally:
            # A failure (already logged by the run path) propagates: the server cuts the
            # connection before the final chunk, so clients see a truncated body rather than a
            # silently "complete" one. Leaving early closes the wrapper's generator.
            await stream.aclose()

    return _CutShortOnFailure(body(), media_type="text/plain; charset=utf-8")


class _CutShortOnFailure(StreamingResponse):
    """A text stream whose failure (a HayhooksError, already logged once by the run path) leaves
    the body unfinished: the server then closes the connection, so the client sees a truncated
    body, without a second traceback in the log for the same failure."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                data = chunk if isinstance(chunk, bytes) else str(chunk).encode(self.charset)
                await send({"type": "http.response.body", "body": data, "more_body": True})
        except HayhooksError:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def sse_stream(stream: RunStream, shutdown_grace: float = 0) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, Any]]:
        try:
            async for item in stream:
                if isinstance(item, dict) and "data" in item and set(item) <= _SSE_KEYS:
                    data = item["data"]
                    yield {**item, "data": data if isinstance(data, str) else json.dumps(jsonable(data))}
                else:
                    text = chunk_text(item)
                    if text:
                        yield {"data": text}
        except HayhooksError as exc:
            # Same message and fields as the JSON error of a non-streaming run.
            yield {"event": "error", "data": json.dumps({"detail": exc.message, **_fields(exc)})}
        finally:
            await stream.aclose()

    return event_source(events(), shutdown_grace)


def event_source(content: Any, shutdown_grace: float) -> EventSourceResponse:
    """An SSE response that, on server shutdown, may run on for ``shutdown_grace`` seconds
    (``HAYHOOKS_GRACEFUL_SHUTDOWN_TIMEOUT``) instead of being cut at once, as sse-starlette does
    by default: in-flight streams finish during a graceful drain."""
    return EventSourceResponse(content, shutdown_grace_period=shutdown_grace)


def _fields(exc: HayhooksError) -> dict[str, Any]:
    return {k: v for k, v in exc.context.items() if k != "detail"}


def respond(name: str, spec: RunSpec, result: Any, shutdown_grace: float = 0) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, SSEStream) and isinstance(result.stream, RunStream):
        return sse_stream(result.stream, shutdown_grace)
    if isinstance(result, RunStream):
        return text_stream(result)
    return json_result(spec, result)
