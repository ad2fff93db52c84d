"""The edge of every HTTP request: its id, its server span, and its per-pipeline request metrics.

A plain ASGI middleware (no ``BaseHTTPMiddleware``: that would buffer streams and cost a task per
request). The request id is the caller's sanitised ``X-Request-ID`` or a new one; it is echoed in
the response and visible to every log line of the request through a contextvar.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from hayhooks.observability import context
from hayhooks.observability.runs import Observer

Scope = dict[str, Any]
_HEADER = context.REQUEST_ID_HEADER.encode()


class RequestMiddleware:
    def __init__(self, app: Any, observer: Optional[Observer] = None) -> None:
        self.app = app
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_id = None
        for key, value in scope["headers"]:
            if key == _HEADER:
                raw_id = value.decode("latin-1")
                break
        request_id = context.sanitize_request_id(raw_id) or context.new_request_id()
        info, token = context.begin(request_id)
        observer = self.observer
        metrics = observer.metrics if observer is not None else None
        tracer = observer.tracer if observer is not None else None
        started = time.perf_counter()
        status = 500
        span: Any = None
        otel_token: Any = None
        if tracer is not None:
            span, otel_token = _start_server_span(tracer, scope, request_id)
        id_header = (_HEADER, request_id.encode())

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif kind == "http.response.body" and metrics is not None and not message.get("more_body", False):
                # Queued before the client has the whole response: a scrape right after the last
                # response always counts it. The last body comes once: no need to check
                # ``info.status`` here.
                _count(metrics, info, status, started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if metrics is not None and info.status is None:  # a response cut short counts too
                _count(metrics, info, status, started)
            if span is not None:
                _end_server_span(span, otel_token, scope, status, info)
            context.end(token)


def _count(metrics: Any, info: context.RequestInfo, status: int, started: float) -> None:
    """Hand a request that reached a pipeline to its metrics, for ``hayhooks_requests_total``.
    Called once per request: at its last response body (which comes once), or, for a response cut
    short, at the end when ``info.status`` is still unset. MCP runs are counted per run instead:
    one MCP HTTP request may carry several tool calls, or none."""
    series = info.series  # set by its run
    if series is None:  # a request refused before any run (bad input), or none for a pipeline
        if info.pipeline is None or info.surface == "mcp":
            return
        series = metrics.series(info.pipeline, info.surface or "run")
    info.status = status
    info.elapsed = time.perf_counter() - started
    series.answered(info)


def _start_server_span(tracer: Any, scope: Scope, request_id: str) -> tuple[Any, Any]:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace

    carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    parent = propagate.extract(carrier)
    method = scope.get("method", "GET")
    span = tracer.start_span(
        f"{method} {scope.get('path', '/')}",
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": method,
            "url.path": scope.get("path", "/"),
            "hayhooks.request_id": request_id,
        },
    )
    return span, otel_context.attach(trace.set_span_in_context(span, parent))


def _end_server_span(span: Any, token: Any, scope: Scope, status: int, info: context.RequestInfo) -> None:
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Status, StatusCode

    route = scope.get("route")
    template = getattr(route, "path", None)
    if info.pipeline is not None and template == "/{name}/run":
        template = f"/{info.pipeline}/run"
    if template:
        span.update_name(f"{scope.get('method', 'GET')} {template}")
    span.set_attribute("http.response.status_code", status)
    if info.pipeline is not None:
        span.set_attribute("hayhooks.pipeline", info.pipeline)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
    otel_context.detach(token)
