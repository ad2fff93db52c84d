"""``GET /status``: the compatible ``{"status": "Up!", "pipelines": [...]}`` plus details.

Paths, worker ids (host and pid) and load-error text are shown to admins only (the admin token, or
a genuinely local request); everyone else sees names, capabilities and states.
"""

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from hayhooks.security import Caller, is_admin, public_pipeline_info, public_status
from hayhooks.server.openapi_errors import NOT_FOUND

router = APIRouter(tags=["status"])


def _admin(request: Request) -> bool:
    return is_admin(request.app.state.service.settings, Caller.from_scope(request.scope))


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    body = await run_in_threadpool(request.app.state.service.status)
    durable = getattr(request.app.state, "durable", None)
    if durable is not None:
        body["durable"] = await run_in_threadpool(durable.status)
    return body if _admin(request) else public_status(body)


@router.get("/status/{name}", responses=NOT_FOUND)
async def pipeline_status(name: str, request: Request) -> dict[str, Any]:
    body = request.app.state.service.pipeline_status(name)
    return body if _admin(request) else public_pipeline_info(body)
