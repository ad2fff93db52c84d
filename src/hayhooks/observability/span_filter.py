"""``HAYHOOKS_TRACING_EXCLUDED_SPANS``: spans dropped before they reach the exporter.

Hayhooks 2.x's setting (default ``["send", "receive"]``) keeps the per-message child spans of
OpenTelemetry's ASGI instrumentation out of traces: one ``http send`` span per streamed chunk buries
what matters. This server makes one server span per request and never creates those, but running it
under ``opentelemetry-instrument`` (or instrumenting the app by hand) adds them, so the setting keeps
its meaning: an entry matches a span of exactly that name, and an ASGI child span whose name ends
in ``http <entry>`` or ``websocket <entry>`` (``POST /chat/completions http send``). Names are
compared exactly, never as prefixes, so ``send`` cannot hide a span called ``send_email``.

Imported only by ``hayhooks.observability.tracing`` once tracing is on (it needs the SDK).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

_ASGI_SCOPES = (" http", " websocket")


class SpanNames:
    """Which span names are excluded (a set lookup; the ASGI form costs one ``rpartition``)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(n.strip() for n in names if n and n.strip())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not self.names:
            return False
        if name in self.names:
            return True
        head, _, last = name.rpartition(" ")
        return last in self.names and head.endswith(_ASGI_SCOPES)


class ExcludingSpanProcessor(SpanProcessor):
    """Passes every span to ``inner`` except those whose name is excluded (at start and at end,
    so a batch processor never queues them)."""

    def __init__(self, inner: SpanProcessor, names: Iterable[str]) -> None:
        self.inner = inner
        self.excluded = SpanNames(names)

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        if span.name not in self.excluded:
            self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if span.name not in self.excluded:
            self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> Any:
        return self.inner.force_flush(timeout_millis)
