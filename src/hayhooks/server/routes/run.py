"""``POST /{name}/run`` — the hot path.

One route serves every pipeline: it looks the pipeline up in the registry at request time, so a
deploy never touches the route table, and everything derived from the signature (models,
serialisers) was built at load time.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from hayhooks.errors import HayhooksError, InvalidInput, NotSupported, PipelineNotFound, PipelineRunError
from hayhooks.observability import observed, tag_request
from hayhooks.pipelines.models import RunSpec
from hayhooks.server.responses import respond

_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def run_pipeline(request: Request) -> Response:
    name = request.path_params["name"]
    service = request.app.state.service
    pipeline = service.registry.get(name)
    if pipeline is None and not service.ready and await service.wait_ready():
        pipeline = service.registry.get(name)
    if pipeline is None:
        raise PipelineNotFound(f"Pipeline '{name}' not found")
    tag_request(name, "run")
    spec = pipeline.run
    if spec is None:
        raise NotSupported(
            f"Pipeline '{name}' has no run_api method; it serves {sorted(pipeline.capabilities)}"
        )

    form = None
    if request.headers.get("content-type", "").startswith(_FORM_TYPES):
        form = await request.form()
        kwargs = _form_kwargs(spec, form)
    else:
        kwargs = _json_kwargs(spec, await request.body())
    if spec.headers_param:
        kwargs[spec.headers_param] = request.headers

    try:
        result = await observed(
            service, name, "run", service.executor.call(pipeline, spec.method_name, spec.is_async, **kwargs)
        )
    except HayhooksError:
        raise
    except Exception as exc:
        if isinstance(getattr(exc, "status_code", None), int) and hasattr(exc, "detail"):
            raise  # an HTTPException raised on purpose by wrapper code
        raise PipelineRunError.wrap(name, exc) from exc
    response = respond(service.executor, name, spec, result)
    if form is not None:
        response.background = BackgroundTask(form.close)
    return response


def _json_kwargs(spec: RunSpec, body: bytes) -> dict[str, Any]:
    try:
        model = spec.request_model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise InvalidInput("Invalid request body", detail=json.loads(exc.json(include_url=False))) from exc
    return spec.arguments(model)


def _form_kwargs(spec: RunSpec, form: Any) -> dict[str, Any]:
    """Form fields hold text: decode JSON for non-string fields (a dict sent as a JSON string works)."""
    raw: dict[str, Any] = {}
    fields = spec.request_model.model_fields
    for field in spec.field_names:
        values = [v for v in form.getlist(field) if not isinstance(v, UploadFile)]
        if not values:
            continue
        wants_text = fields[field].annotation is str
        decoded = [v if wants_text else _maybe_json(v) for v in values]
        raw[field] = decoded[0] if len(decoded) == 1 else decoded
    try:
        model = spec.request_model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput("Invalid form data", detail=json.loads(exc.json(include_url=False))) from exc
    kwargs = spec.arguments(model)
    if spec.files_param:
        uploads = [v for v in form.getlist(spec.files_param) if isinstance(v, UploadFile)]
        if not uploads:
            uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        kwargs[spec.files_param] = uploads or None
    return kwargs


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def install(app: FastAPI) -> None:
    app.router.add_route("/{name}/run", run_pipeline, methods=["POST"], include_in_schema=False)
