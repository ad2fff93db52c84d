"""Observability: request ids and logs at the edge, metrics and spans around each run.

``install(app, service)`` is called by ``create_app``; the run path opens one observed run per
run (``hayhooks.pipelines.runs.observe``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hayhooks.observability.context import current_request_id
from hayhooks.observability.runs import deploy_finished, tag_request

__all__ = ["current_request_id", "deploy_finished", "install", "tag_request"]


def install(app: Any, service: Any) -> Any:
    """Add the middleware and routes; return the lifespan part (recent-runs writer, trace flush)."""
    from hayhooks.observability import routes
    from hayhooks.observability.logs import apply_to_uvicorn
    from hayhooks.observability.middleware import RequestMiddleware
    from hayhooks.observability.recent import RecentRuns, enable_haystack_tracer
    from hayhooks.observability.runs import Observer
    from hayhooks.observability.tracing import setup_tracing

    settings = service.settings
    apply_to_uvicorn(
        settings.log_format, settings.access_log_excluded_path_prefixes, settings.intercepted_loggers
    )
    recent = None
    if settings.recent_runs > 0:
        recent = RecentRuns(service.store.meta / "runs", service.cluster.id, settings.recent_runs)
    observer = Observer(service, None, None, recent)
    observer.attach()
    app.add_middleware(RequestMiddleware, observer=observer)
    app.include_router(routes.router)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        # Started with the server, never at import: the module-level app must not touch files.
        flusher = None
        durable = getattr(app.state, "durable", None)
        if settings.metrics_enabled:
            from hayhooks.observability.metrics import process_metrics

            observer.metrics = await asyncio.to_thread(process_metrics, service.store.meta)
            flusher = asyncio.create_task(observer.metrics.flush_every(), name="hayhooks-metrics")
            if durable is not None:  # its event counts, summed over workers like every counter
                # Followed for the process' life: counts made while shutting down (releases) are
                # written by the flush at exit.
                observer.metrics.follow(durable.metrics, observer.metrics.durable_events)
        tracing = setup_tracing(settings.tracing_excluded_spans)
        observer.use_tracing(tracing)
        if recent is not None or tracing is not None:
            enable_haystack_tracer(tracing.haystack_tracer if tracing is not None else None)
        if recent is not None:
            recent.start()
        try:
            yield
        finally:
            if flusher is not None:
                flusher.cancel()
                await asyncio.gather(flusher, return_exceptions=True)
            if recent is not None:
                recent.stop()
            if tracing is not None:
                tracing.flush()

    return lifespan()
