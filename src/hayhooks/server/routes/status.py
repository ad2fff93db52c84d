"""``GET /status``: the compatible ``{"status": "Up!", "pipelines": [...]}`` plus details."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from hayhooks.server.openapi_errors import NOT_FOUND

router = APIRouter(tags=["status"])


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    return await run_in_threadpool(request.app.state.service.status)


@router.get("/status/{name}", responses=NOT_FOUND)
async def pipeline_status(name: str, request: Request) -> dict[str, Any]:
    return request.app.state.service.pipeline_status(name)
