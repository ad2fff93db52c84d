"""``SSEStream``: what a ``run_api`` returns to stream Server-Sent Events instead of plain text."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from typing import Any, Union


@dataclass
class SSEStream:
    """Wrap a (async) generator; each item becomes one SSE ``data:`` message.

    Items may be strings, dicts (sent as JSON), Haystack ``StreamingChunk`` (its content), or
    ``{"event": ..., "data": ...}`` dicts to name the event. A failure mid-stream ends the stream
    with an ``event: error`` message rather than a cut connection.
    """

    stream: Union[Iterable[Any], AsyncIterable[Any]]
