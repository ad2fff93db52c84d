"""``POST /{name}/run`` — the hot path.

One route serves every pipeline: it looks the pipeline up in the registry at request time, so a
deploy never touches the route table, and everything derived from the signature (models,
serialisers) was built at load time.
"""

from __future__ import annotations

import functools
import io
import json
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from hayhooks.errors import InvalidInput
from hayhooks.observability import tag_request
from hayhooks.pipelines.models import RunSpec
from hayhooks.pipelines.names import RESERVED_NAMES
from hayhooks.server.disconnect import client_gone
from hayhooks.server.responses import respond
from hayhooks.server.validation import validation_errors

_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def run_pipeline(request: Request) -> Response:
    name = request.path_params["name"]
    service = request.app.state.service
    # Look up first so an unknown name or a pipeline without run_api is refused before reading
    # the body; service.run repeats the (cheap) lookup as the one owner of the run.
    pipeline = await service.runner.lookup(name)
    tag_request(name, "run")  # bad input and 503s are counted for this pipeline too
    spec = pipeline.run
    if spec is None:
        service.runner.method(pipeline, "run")  # raises NotSupported
    assert spec is not None

    form = None
    if request.headers.get("content-type", "").startswith(_FORM_TYPES):
        form = await request.form()
        kwargs = _form_kwargs(spec, form)
    else:
        kwargs = _json_kwargs(spec, await request.body())
    if spec.headers_param:
        kwargs[spec.headers_param] = request.headers

    result = await service.run(
        name, "run", surface="run", kwargs=kwargs, disconnected=functools.partial(client_gone, request)
    )
    response = respond(name, spec, result, service.settings.graceful_shutdown_timeout)
    if form is not None:
        response.background = BackgroundTask(form.close)
    return response


def _json_kwargs(spec: RunSpec, body: bytes) -> dict[str, Any]:
    try:
        model = spec.request_model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise InvalidInput("Invalid request body", detail=validation_errors(exc)) from exc
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
        raise InvalidInput("Invalid form data", detail=validation_errors(exc)) from exc
    kwargs = spec.arguments(model)
    if spec.files_param:
        uploads = [_as_upload(v) for v in form.getlist(spec.files_param)]
        if not uploads:
            uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        kwargs[spec.files_param] = uploads or None
    return kwargs


def _as_upload(value: Any) -> UploadFile:
    """A part of the files field sent without a filename arrives as text; it is still a file the
    OpenAPI document allows (``format: binary``), so the pipeline gets it as one (UTF-8 encoded)."""
    if isinstance(value, UploadFile):
        return value
    return UploadFile(io.BytesIO(str(value).encode("utf-8", "surrogateescape")), filename=None)


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError, RecursionError):  # nested too deeply: left as text for validation
        return value


class _RunRoute(Route):
    """``/{name}/run`` for every name the server does not use itself.

    The route goes first in the table: FastAPI walks its included routers one by one, and with
    the run route last, matching cost a third of an echo request's time. Declining reserved first
    segments keeps every fixed route (``POST /undeploy/run`` undeploys a pipeline called "run").
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE and child_scope["path_params"]["name"].lower() in RESERVED_NAMES:
            return Match.NONE, {}
        return match, child_scope


def install(app: FastAPI) -> None:
    app.router.routes.insert(
        0, _RunRoute("/{name}/run", run_pipeline, methods=["POST"], include_in_schema=False)
    )
