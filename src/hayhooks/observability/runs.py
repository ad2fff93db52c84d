"""Per-run instrumentation in one place: metrics, the ``hayhooks.pipeline.run`` span and the
recent-runs record, opened when a run starts and closed when it ends (for a stream: at its last
chunk, on error, or when the client leaves).

The one run path (``hayhooks.pipelines.runs.Runner``) opens a ``Run`` per run with ``start_run``.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from dataclasses import asdict
from typing import Any, Optional

from hayhooks.observability import context
from hayhooks.observability.recent import ComponentTiming, RecentRuns, current_run

_observers: weakref.WeakKeyDictionary[Any, Observer] = weakref.WeakKeyDictionary()


class Observer:
    """What one app records; attached to its ``PipelineService``."""

    def __init__(
        self, service: Any, metrics: Any = None, tracing: Any = None, recent: Optional[RecentRuns] = None
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.tracing = tracing
        self.tracer = tracing.tracer if tracing is not None else None
        self.recent = recent
        self.worker_id = service.cluster.id
        self.pid = os.getpid()

    def use_tracing(self, tracing: Any) -> None:
        self.tracing = tracing
        self.tracer = tracing.tracer if tracing is not None else None

    def attach(self) -> None:
        _observers[self.service] = self


def observer_of(service: Any) -> Optional[Observer]:
    try:
        return _observers.get(service)
    except TypeError:
        return None


def tag_request(name: str, surface: str) -> None:
    """Mark the current HTTP request as one for pipeline ``name``: the middleware then counts it in
    ``hayhooks_requests_total`` with its final status (bad input and 503s included)."""
    info = context.current()
    if info is not None:
        info.pipeline = name
        info.surface = surface


def classify(exc: Optional[BaseException]) -> tuple[str, int]:
    """(outcome, HTTP status) of a run that ended with ``exc``."""
    if exc is None:
        return "ok", 200
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return "cancelled", 499
    status = getattr(exc, "status_code", None)
    code = status if isinstance(status, int) else 500
    if code == 503:
        return "rejected", code
    if code == 504 or isinstance(exc, TimeoutError):
        return "timeout", 504
    return "error", code


class Run:
    """One observed run. It is also its own recent-runs record: nothing is built for ``/traces``
    on the request path; the recent-runs writer asks ``record()`` off the request path."""

    __slots__ = (
        "_in_context",
        "_otel_token",
        "_run_token",
        "chunks",
        "components",
        "elapsed",
        "error",
        "finished",
        "observer",
        "outcome",
        "pipeline",
        "request_id",
        "series",
        "span",
        "started_at",
        "status_code",
        "surface",
        "t0",
        "__weakref__",
    )

    def __init__(self, observer: Observer, pipeline: str, surface: str) -> None:
        self.observer = observer
        self.pipeline = pipeline
        self.surface = surface
        self.t0 = time.perf_counter()
        self.started_at = time.time()
        self.chunks = 0
        self.finished = False
        self.components: Optional[list[ComponentTiming]] = None  # filled by Haystack's tracing hook
        info = context.current()
        metrics = observer.metrics
        series = self.series = (
            None
            if metrics is None
            else metrics.all_series.get((pipeline, surface)) or metrics.series(pipeline, surface)
        )
        if series is not None:
            series.run_started(self)
        if info is None:
            self.request_id = None
        else:
            # The id, not the RequestInfo: the info holds this run (``info.run``), and a reference
            # back would make a cycle that only the garbage collector frees.
            self.request_id = info.request_id
            if info.pipeline is None:
                info.pipeline, info.surface = pipeline, surface
            if (
                series is not None
                and info.series is None
                and not series.runs_are_requests  # an MCP request is counted per run instead
                and info.pipeline == pipeline
                and info.surface == surface
            ):
                info.series = series  # where the middleware counts the request's answer
        self._in_context = False  # whether activate() must set ``current_run``
        if observer.recent is not None:
            if info is not None and info.run is None:
                info.run = self  # where Haystack's component spans find it, no contextvar to set
            else:
                self._in_context = True
        self.span: Any = None
        if observer.tracer is not None:
            self.span = observer.tracer.start_span(
                "hayhooks.pipeline.run",
                attributes={"hayhooks.pipeline": pipeline, "hayhooks.surface": surface},
            )
        self.elapsed = 0.0  # seconds, set when the run finishes
        self.outcome = "running"
        self.status_code = 0
        self.error: Optional[str] = None
        self._otel_token: Any = None
        self._run_token: Any = None

    def record(self) -> dict[str, Any]:
        """This run as ``GET /traces`` shows it."""
        trace_id = None
        if self.span is not None:
            trace_id = format(self.span.get_span_context().trace_id, "032x")
        return {
            "request_id": self.request_id,
            "pipeline": self.pipeline,
            "surface": self.surface,
            "worker": self.observer.worker_id,
            "pid": self.observer.pid,
            "started_at": self.started_at,
            "trace_id": trace_id,
            "duration_ms": round(self.elapsed * 1000, 3),
            "outcome": self.outcome,
            "status_code": self.status_code,
            "error": self.error,
            "components": [asdict(c) for c in list(self.components or ())],
        }

    # The span and the record are "current" while wrapper code runs, so Haystack's spans and
    # component timings land under this run (the executor carries them into its threads).
    def activate(self) -> None:
        if self.span is not None:
            from opentelemetry import context as otel_context
            from opentelemetry import trace

            self._otel_token = otel_context.attach(trace.set_span_in_context(self.span))
        if self._in_context:
            self._run_token = current_run.set(self)

    def deactivate(self) -> None:
        if self._otel_token is not None:
            from opentelemetry import context as otel_context

            otel_context.detach(self._otel_token)
            self._otel_token = None
        if self._run_token is not None:
            current_run.reset(self._run_token)
            self._run_token = None

    # The run path's Observation protocol (hayhooks.pipelines.runs).
    def chunk(self) -> None:
        self.chunks += 1

    def end(self, error: Optional[BaseException] = None) -> None:
        self.finish(error)

    def finish(self, exc: Optional[BaseException] = None) -> None:
        if self.finished:
            return
        self.finished = True
        outcome, code = classify(exc)
        self.outcome, self.status_code = outcome, code
        self.elapsed = time.perf_counter() - self.t0
        if self.series is not None:
            self.series.run_finished(self)  # read by the next metrics flush
        if self.span is not None:
            from opentelemetry.trace import Status, StatusCode

            self.span.set_attribute("hayhooks.outcome", outcome)
            if self.chunks:
                self.span.set_attribute("hayhooks.stream.chunks", self.chunks)
            if exc is not None and outcome != "cancelled":
                self.span.record_exception(exc)
                self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            self.span.end()
        recent = self.observer.recent
        if recent is not None:
            if exc is not None and outcome != "cancelled":
                self.error = f"{type(exc).__name__}: {exc}"[:500]
            recent.add(self)


def start_run(service: Any, pipeline: str, surface: str) -> Optional[Run]:
    """An observed run of ``pipeline`` (None when nothing observes ``service``), for the run path."""
    observer = _observers.get(service)
    return Run(observer, pipeline, surface) if observer is not None else None


def deploy_finished(
    service: Any, operation: str, action: Optional[str], exc: Optional[BaseException]
) -> None:
    """Count a finished deploy / undeploy (called where ``PipelineService`` finishes one)."""
    observer = _observers.get(service)
    if observer is None or observer.metrics is None:
        return
    if exc is None:
        observer.metrics.deploys.labels(action or operation).inc()
    else:
        status = getattr(exc, "status_code", None)
        code = status if isinstance(status, int) else 500
        observer.metrics.deploy_failures.labels(operation, str(code)).inc()


def counts_deploys(operation: str) -> Any:
    """Decorator for the ``PipelineService`` method that finishes a deploy or an undeploy."""
    import functools

    def decorate(method: Any) -> Any:
        @functools.wraps(method)
        async def wrapper(service: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                result = await method(service, *args, **kwargs)
            except BaseException as exc:
                deploy_finished(service, operation, None, exc)
                raise
            deploy_finished(service, operation, getattr(result, "action", None), None)
            return result

        return wrapper

    return decorate
