"""OpenTelemetry export, set up only when asked for (``hayhooks[tracing]`` + ``OTEL_EXPORTER_OTLP_*``).

Without the standard endpoint variables nothing is imported and the request path does no tracing
work at all. With them, spans go out over OTLP/HTTP through a batch processor: a server span per
request (continuing an inbound W3C ``traceparent``), a ``hayhooks.pipeline.run`` span per run, and
Haystack's pipeline and component spans beneath it through ``opentelemetry-haystack``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Optional

log = logging.getLogger("hayhooks")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
INSTALL_HINT = "pip install 'hayhooks[tracing]'"


class Tracing:
    """The process' tracer provider, our tracer, and Haystack's OpenTelemetry tracer."""

    def __init__(self, provider: Any, tracer: Any, haystack_tracer: Any) -> None:
        self.provider = provider
        self.tracer = tracer
        self.haystack_tracer = haystack_tracer

    def flush(self, timeout_s: float = 5.0) -> None:
        self.provider.force_flush(int(timeout_s * 1000))


_tracing: Optional[Tracing] = None
_attempted = False


def wanted() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def setup_tracing(excluded_spans: Sequence[str] = ()) -> Optional[Tracing]:
    """Once per process: the exporting tracer, or None when tracing is off or not installed.

    ``excluded_spans`` (``HAYHOOKS_TRACING_EXCLUDED_SPANS``) names spans that are never exported.
    """
    global _tracing, _attempted
    if _attempted:
        return _tracing
    _attempted = True
    if not wanted():
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning(
            "OTEL_EXPORTER_OTLP_*ENDPOINT is set but OpenTelemetry is not installed (%s); "
            "traces are not exported. Install them with: %s",
            exc,
            INSTALL_HINT,
        )
        return None
    from hayhooks.version import __version__

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "hayhooks"}
    provider = TracerProvider(resource=Resource.create(attributes))
    processor: Any = BatchSpanProcessor(OTLPSpanExporter())
    if any(name.strip() for name in excluded_spans):
        from hayhooks.observability.span_filter import ExcludingSpanProcessor

        processor = ExcludingSpanProcessor(processor, excluded_spans)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    haystack_tracer = None
    try:
        from haystack_integrations.tracing.opentelemetry import OpenTelemetryTracer

        haystack_tracer = OpenTelemetryTracer(provider.get_tracer("haystack"))
    except ImportError as exc:
        log.warning("Haystack component spans need opentelemetry-haystack (%s): %s", exc, INSTALL_HINT)
    _tracing = Tracing(provider, provider.get_tracer("hayhooks", __version__), haystack_tracer)
    log.info("Exporting traces over OTLP/HTTP")
    return _tracing
