"""``GET /metrics`` (Prometheus text) and ``GET /traces?limit=N`` (recent runs of every worker)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from hayhooks.errors import NotSupported
from hayhooks.observability.access import metrics_key_ok, traces_allowed
from hayhooks.observability.runs import observer_of
from hayhooks.security import Caller

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    service = request.app.state.service
    metrics_key_ok(service.settings, request.headers)
    observer = observer_of(service)
    if observer is None or observer.metrics is None:
        raise NotSupported("Metrics are turned off (HAYHOOKS_METRICS_ENABLED=false)")
    durable = getattr(request.app.state, "durable", None)
    body = await asyncio.to_thread(observer.metrics.render, service, durable)
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/traces", summary="Recent pipeline runs of every worker, with per-component timings")
async def traces(request: Request, limit: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
    service = request.app.state.service
    traces_allowed(service.settings, Caller.from_scope(request.scope))
    observer = observer_of(service)
    if observer is None or observer.recent is None:
        raise NotSupported("The recent-runs record is off (HAYHOOKS_RECENT_RUNS=0)")
    recent = observer.recent

    def collect() -> list[dict[str, Any]]:
        live = {w.id for w in service.cluster.workers()}
        return recent.collect(live, limit)

    runs = await asyncio.to_thread(collect)
    return {"runs": runs, "count": len(runs), "worker": service.cluster.id}
