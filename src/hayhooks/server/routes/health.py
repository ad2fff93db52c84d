"""Liveness and readiness, kept apart: alive as soon as the process answers, ready once loaded."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

_LOADING: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Still loading the pipelines directory",
        "content": {"application/json": {"example": {"status": "loading"}}},
    }
}

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses=_LOADING)
async def ready(request: Request) -> JSONResponse:
    service = request.app.state.service
    if service.draining:  # SIGTERM received: load balancers must stop routing here
        return JSONResponse({"status": "draining"}, status_code=503)
    if service.ready:
        return JSONResponse({"status": "ready", "generation": service.registry.generation})
    return JSONResponse({"status": "loading"}, status_code=503)
