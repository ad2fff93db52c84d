"""``GET /status``: the compatible ``{"status": "Up!", "pipelines": [...]}`` plus details."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["status"])


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    body = await run_in_threadpool(request.app.state.service.status)
    durable = getattr(request.app.state, "durable", None)
    if durable is not None:
        body["durable"] = await run_in_threadpool(durable.status)
    return body


@router.get("/status/{name}")
async def pipeline_status(name: str, request: Request) -> dict[str, Any]:
    return request.app.state.service.pipeline_status(name)
