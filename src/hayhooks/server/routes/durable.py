"""Durable-run routes (Hayhooks 2.x paths): submit, list, inspect, cancel, resume, stream.

Thin: the request is validated against the wrapper's model, then it is one call to the
``DurableRuntime`` (``app.state.durable``) or its store. Every worker answers for every execution
because all of them read the same store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal, Optional, get_args

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from hayhooks.durable.errors import IdempotencyConflict, PayloadTooLarge
from hayhooks.durable.models import STATUSES, TERMINAL, Execution, request_hash
from hayhooks.durable.spec import durable_spec
from hayhooks.durable.worker import DurableRuntime
from hayhooks.errors import HayhooksError, InvalidInput
from hayhooks.server.openapi_errors import error

# Every answer these routes give besides their success, in the one error shape (its ``detail`` is a
# message, or the validation errors of a 422).
# The states an execution can be in (``STATUSES``), as the query filter's schema.
ExecutionStatus = Literal["queued", "running", "waiting", "completed", "failed", "canceled"]

assert set(get_args(ExecutionStatus)) == set(STATUSES)

router = APIRouter(
    tags=["durable"],
    responses={
        400: error("The request is malformed"),
        404: error("No pipeline, or no execution, of that name"),
        409: error("The execution is not in a state that allows this, or an Idempotency-Key conflict"),
        413: error("The payload exceeds the durable size limits"),
        422: error("Invalid input: the request body, query or resume payload"),
        429: error("Too many unfinished executions", retry_after=True),
        501: error("The pipeline has no run_durable method"),
        503: error("The execution store is unreachable", retry_after=True),
    },
)

_STREAM_POLL_SECONDS = 0.1
_STREAM_KEEPALIVE_SECONDS = 15.0


def _runtime(request: Request) -> DurableRuntime:
    return request.app.state.durable


def _base(request: Request) -> str:
    return request.scope.get("root_path", "")


async def _pipeline(request: Request, name: str) -> Any:
    """The same lookup as every run (waits for startup loading, 404 otherwise)."""
    return await request.app.state.service.runner.lookup(name)


async def _body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body exceeds durable_max_payload_bytes ({limit})")
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body exceeds durable_max_payload_bytes ({limit})")
    try:
        return json.loads(raw or b"{}")
    except ValueError as exc:
        raise InvalidInput(f"The request body is not JSON: {exc}") from exc


def _validate(model: Any, data: Any, what: str) -> Any:
    try:
        return model.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        raise InvalidInput(f"Invalid {what}", detail=json.loads(exc.json(include_url=False))) from exc


def _view(request: Request, record: Execution) -> dict[str, Any]:
    view = record.view(_base(request))
    view["pending_reason"] = _runtime(request).pending_reason(record)
    return view


@router.post("/{name}/run-durable", status_code=202, summary="Start a durable execution")
async def run_durable(
    name: str,
    request: Request,
    idempotency_key: Optional[str] = Header(None, alias="Idempotency-Key"),
) -> JSONResponse:
    """202 with the execution and its ``Location``. With an ``Idempotency-Key``, a retry returns the
    same execution (200 with ``Idempotent-Replay: true`` once it finished); reusing the key for a
    different body is a 409."""
    runtime = _runtime(request)
    pipeline = await _pipeline(request, name)
    spec = durable_spec(pipeline)
    body = await _body(request, runtime.settings.durable_max_payload_bytes)
    payload = _validate(spec.request_model, body, "request body")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise InvalidInput("Idempotency-Key must be 1-255 characters")
    record, created = await runtime.submit(pipeline, spec, payload, idempotency_key)
    if not created and record.request_hash != request_hash(name, payload):
        raise IdempotencyConflict(
            f"Idempotency-Key '{idempotency_key}' was used for a different request "
            f"(execution {record.execution_id})"
        )
    view = _view(request, record)
    headers = {"Location": view["links"]["self"]}
    if not created:
        headers["Idempotent-Replay"] = "true"
    status = 200 if (not created and record.status in TERMINAL) else 202
    return JSONResponse(view, status_code=status, headers=headers)


@router.get("/{name}/executions", summary="List durable executions")
async def list_executions(
    name: str,
    request: Request,
    status: Optional[ExecutionStatus] = Query(None, description="Only executions in this state"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    records, total = await asyncio.to_thread(
        _runtime(request).store.list_executions, name, status, limit, offset
    )
    return {
        "executions": [_view(request, r) for r in records],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/{name}/executions/{execution_id}", summary="Get a durable execution")
async def get_execution(name: str, execution_id: str, request: Request) -> dict[str, Any]:
    record = await asyncio.to_thread(_runtime(request).store.get, execution_id, name)
    return _view(request, record)


@router.post("/{name}/executions/{execution_id}/cancel", summary="Cancel a durable execution")
async def cancel_execution(name: str, execution_id: str, request: Request) -> dict[str, Any]:
    """Queued and waiting executions are canceled at once; a running one at its next step
    boundary or ``check_cancelled()``."""
    runtime = _runtime(request)
    record = await asyncio.to_thread(runtime.store.request_cancel, execution_id, name)
    return _view(request, record)


@router.post(
    "/{name}/executions/{execution_id}/resume", status_code=202, summary="Resume a waiting execution"
)
async def resume_execution(name: str, execution_id: str, request: Request) -> JSONResponse:
    runtime = _runtime(request)
    pipeline = await _pipeline(request, name)
    spec = durable_spec(pipeline)
    body = await _body(request, runtime.settings.durable_max_payload_bytes)
    payload = _validate(spec.resume_model, body, "resume input") if spec.resume_model is not None else body
    record = await asyncio.to_thread(runtime.store.resume, execution_id, payload, name)
    runtime.wake()
    return JSONResponse(_view(request, record), status_code=202)


@router.get("/{name}/executions/{execution_id}/stream", summary="Stream progress and chunks (SSE)")
async def stream_execution(
    name: str,
    execution_id: str,
    request: Request,
    last_event_id: Optional[str] = Header(None, alias="Last-Event-ID"),
    after: Optional[int] = Query(None, description="Resume after this event id (like Last-Event-ID)"),
) -> StreamingResponse:
    """Server-Sent Events: ``progress``, ``chunk`` and ``status`` events, each with an ``id``; a
    client that reconnects with ``Last-Event-ID`` gets only what it missed. Ends after the
    execution finishes."""
    store = _runtime(request).store
    await asyncio.to_thread(store.get, execution_id, name)
    start = (
        after
        if after is not None
        else (int(last_event_id) if last_event_id and last_event_id.isdigit() else 0)
    )

    async def events() -> AsyncIterator[bytes]:
        seen = start
        idle = 0.0
        while True:
            batch = await asyncio.to_thread(store.events, execution_id, seen)
            for event in batch:
                seen = event.seq
                payload = json.dumps(event.data, default=str)
                yield f"id: {event.seq}\nevent: {event.kind}\ndata: {payload}\n\n".encode()
            if batch:
                idle = 0.0
                if batch[-1].kind == "status" and batch[-1].data.get("status") in TERMINAL:
                    return
                continue
            record = await asyncio.to_thread(store.get, execution_id)
            if record.terminal and not await asyncio.to_thread(store.events, execution_id, seen):
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(_STREAM_POLL_SECONDS)
            idle += _STREAM_POLL_SECONDS
            if idle >= _STREAM_KEEPALIVE_SECONDS:
                idle = 0.0
                yield b": keep-alive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def openapi_paths(pipelines: list[Any], register: Any) -> dict[str, Any]:
    """Per-pipeline ``/{name}/run-durable`` entries with the wrapper's request model, for the
    OpenAPI document built from the registry (``register(name, model)`` returns a ``$ref``)."""
    paths: dict[str, Any] = {}
    for pipeline in pipelines:
        if "durable" not in pipeline.capabilities:
            continue
        try:
            spec = durable_spec(pipeline)
        except HayhooksError:
            continue
        paths[f"/{pipeline.name}/run-durable"] = {
            "post": {
                "tags": ["durable"],
                "summary": f"Start a durable execution of {pipeline.name}",
                "description": spec.description,
                "operationId": f"run_durable_{pipeline.name.replace('-', '_')}",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": register(pipeline.name, spec.request_model)}},
                },
                "responses": {
                    "202": {"description": "The execution, queued; its URL in Location"},
                    "200": {"description": "Idempotent replay of a finished execution"},
                    "409": {"description": "Idempotency-Key reused for a different request"},
                    "413": {"description": "Body larger than durable_max_payload_bytes"},
                    "422": {"description": "Invalid input"},
                },
            }
        }
    return paths
