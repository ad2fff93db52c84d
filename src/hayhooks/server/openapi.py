"""OpenAPI generated from the registry, so ``/openapi.json`` and ``/docs`` list every pipeline's
run route with its models and stay right after deploys and undeploys (rebuilt only when the
registry's version changes, never per request).

Every pipeline gets component names of its own, whatever the set of names deployed: ``my-pipe``,
``my_pipe``, ``MyPipe`` and ``mypipe`` never share a request model, and a nested model (two
pipelines that each define ``Item``) is filed under its pipeline's name (``my-pipe.Item``), so one
pipeline's deploy can neither overwrite nor rename another's schemas.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool

from hayhooks.pipelines.models import LoadedPipeline, RunSpec
from hayhooks.pipelines.service import PipelineService
from hayhooks.server.openapi_errors import (
    ERROR_SCHEMA,
    ERROR_SCHEMA_NAME,
    SSE_EVENT_SCHEMA,
    document_fixed_routes,
    error,
)
from hayhooks.server.routes import durable

_COMPONENTS = "#/components/schemas/"
_LOCAL = "#/$defs/"
_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*$")

# Statuses a run can answer besides 200, with what they mean to a client.
_RUN_ERRORS: dict[str, str] = {
    "400": "Malformed request body (for example broken multipart data)",
    "404": "Pipeline not found (undeployed meanwhile)",
    "413": "Request body too large",
    "422": "Invalid input: the body does not match the request schema",
    "500": "The pipeline failed; `component` names the Haystack component when known",
    "503": "Overloaded: too many runs waiting; retry after `Retry-After` seconds",
    "504": "The run took longer than the request timeout",
}


def install(app: FastAPI, service: PipelineService) -> None:
    cache: dict[str, Any] = {"version": None, "schema": None}

    def openapi() -> dict[str, Any]:
        version = service.registry.version
        if cache["version"] != version or cache["schema"] is None:
            cache["schema"] = build(app, service.registry.all())
            cache["version"] = version
        return cache["schema"]

    app.openapi = openapi  # type: ignore[method-assign]

    # The YAML text of the last document served: rendering takes tens of milliseconds for a few
    # dozen pipelines, so it is done once per built document (off the event loop), never per
    # request. Keyed by the document object ``app.openapi()`` returns, which is replaced whenever
    # the registry changes: the YAML can never lag behind ``/openapi.json``.
    rendered: list[Any] = [None, None, ""]  # document, root path, text

    @app.get(YAML_PATH, include_in_schema=False)
    async def openapi_yaml(request: Request) -> Response:
        schema = app.openapi()
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        if rendered[0] is not schema or rendered[1] != root_path:
            text = await run_in_threadpool(as_yaml, with_root_path(app, schema, root_path))
            rendered[:] = [schema, root_path, text]
        return Response(rendered[2], media_type="application/yaml")


YAML_PATH = "/openapi.yaml"


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter when PyYAML was built with it (much faster), else the pure one; a schema
    used twice is written out twice, never as a ``&id001`` anchor some OpenAPI tools reject."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def with_root_path(app: FastAPI, schema: dict[str, Any], root_path: str) -> dict[str, Any]:
    """The document as ``/openapi.json`` serves it: behind a proxy prefix, FastAPI's own
    ``/openapi.json`` route adds a ``servers`` entry for the request's ``root_path``; so does this."""
    if root_path and app.root_path_in_servers:
        servers = schema.get("servers", [])
        if root_path not in {s.get("url") for s in servers}:
            return {**schema, "servers": [{"url": root_path}, *servers]}
    return schema


def as_yaml(schema: dict[str, Any]) -> str:
    """The OpenAPI document as YAML, keys in the JSON document's order (``openapi`` and ``info``
    first, as people expect to read them)."""
    return str(yaml.dump(schema, Dumper=_Dumper, sort_keys=False, allow_unicode=True))


def schema_namespace(pipeline_name: str) -> str:
    """The prefix of a pipeline's model names, different for every pipeline name.

    A ``snake_case`` name keeps the readable CamelCase of Hayhooks 2.x (``my_pipe`` →
    ``MyPipeRunRequest``): such a title maps back to exactly one snake_case name. Any other name
    (``my-pipe``, ``MyPipe``, ``v_2``) is kept as it is and followed by ``_`` (``MyPipe_RunRequest``):
    CamelCase titles never contain ``_``, so the two families cannot meet either.
    """
    if _SNAKE_CASE.match(pipeline_name):
        return "".join(part.capitalize() for part in pipeline_name.split("_"))
    return f"{pipeline_name}_"


def build(app: FastAPI, pipelines: list[LoadedPipeline]) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    paths = schema.setdefault("paths", {})
    document_fixed_routes(paths)
    operation_ids = {
        op.get("operationId") for item in paths.values() for op in item.values() if isinstance(op, dict)
    }
    for pipeline in pipelines:
        if pipeline.run is None:
            continue
        operation_id = f"run_{pipeline.name}"
        if operation_id in operation_ids:  # a fixed route named like this pipeline's run: keep both
            operation_id = f"run_pipeline_{pipeline.name}"
        operation_ids.add(operation_id)
        paths[f"/{pipeline.name}/run"] = {
            "post": _run_operation(pipeline, pipeline.run, components, operation_id)
        }
    schema.setdefault("paths", {}).update(
        durable.openapi_paths(pipelines, lambda name, m: _register_model(name, m, components))
    )
    return schema


def _run_operation(
    pipeline: LoadedPipeline, spec: RunSpec, components: dict[str, Any], operation_id: str
) -> dict[str, Any]:
    request, response = _register_models(pipeline.name, spec, components)
    json_body = {"schema": request}
    content: dict[str, Any] = {"application/json": json_body}
    if spec.files_param:
        content["multipart/form-data"] = {"schema": _multipart(request, spec.files_param)}
    request_model_schema = components[request["$ref"].removeprefix(_COMPONENTS)]
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {}
    if "json" in spec.outputs:
        ok["application/json"] = {"schema": response}
    if "text" in spec.outputs:
        ok["text/plain"] = {"schema": {"type": "string", "description": "Streamed text chunks"}}
    if "sse" in spec.outputs:
        ok["text/event-stream"] = {"itemSchema": SSE_EVENT_SCHEMA}
    if ok:
        streams = " or a stream" if len(ok) > 1 and "application/json" in ok else ""
        description = "The pipeline result" + streams if "application/json" in ok else "The streamed result"
        responses["200"] = {"description": description, "content": ok}
    if "response" in spec.outputs:
        responses["default"] = {"description": "A response the pipeline builds itself (any status and type)"}
    for status, description in _RUN_ERRORS.items():
        responses[status] = error(description, retry_after=status == "503")
    return {
        "tags": ["pipelines"],
        "summary": f"Run {pipeline.name}",
        "description": spec.description,
        "operationId": operation_id,
        "requestBody": {"required": bool(request_model_schema.get("required")), "content": content},
        "responses": responses,
    }


def _register_models(name: str, spec: RunSpec, components: dict[str, Any]) -> tuple[dict[str, str], ...]:
    """Add the pipeline's request and response schemas (and every model they use) to components.

    Both are generated together so one nested model gets one local name in both, then every local
    name is mapped to a component name of this pipeline and every reference rewritten to it.
    """
    refs, top = models_json_schema(
        [(spec.request_model, "validation"), (spec.response_model, "serialization")],
        ref_template=_LOCAL + "{model}",
    )
    local_defs: dict[str, Any] = top.get("$defs", {})
    namespace = schema_namespace(name)
    request_local = refs[(spec.request_model, "validation")]["$ref"].removeprefix(_LOCAL)
    response_local = refs[(spec.response_model, "serialization")]["$ref"].removeprefix(_LOCAL)
    names = {local: f"{name}.{local}" for local in local_defs}
    names[request_local] = f"{namespace}RunRequest"
    names[response_local] = f"{namespace}RunResponse"
    for local, definition in local_defs.items():
        components[names[local]] = _rewrite_refs(definition, names)
    for local in (request_local, response_local):
        components[names[local]]["title"] = names[local]
    if "json" not in spec.outputs:  # a stream: no {"result": ...} body to describe
        del components[names[response_local]]
    return {"$ref": _COMPONENTS + names[request_local]}, {"$ref": _COMPONENTS + names[response_local]}


def _register_model(name: str, model: Any, components: dict[str, Any]) -> dict[str, str]:
    """One more model of pipeline ``name`` (e.g. its durable request), filed under the pipeline's
    name like its nested models (``shop.TaskRequest``), so equal class names never collide."""
    refs, top = models_json_schema([(model, "validation")], ref_template=_LOCAL + "{model}")
    local_defs: dict[str, Any] = top.get("$defs", {})
    top_local = refs[(model, "validation")]["$ref"].removeprefix(_LOCAL)
    names = {local: f"{name}.{local}" for local in local_defs}
    for local, definition in local_defs.items():
        components[names[local]] = _rewrite_refs(definition, names)
    components[names[top_local]]["title"] = names[top_local]
    return {"$ref": _COMPONENTS + names[top_local]}


def _rewrite_refs(node: Any, names: dict[str, str]) -> Any:
    """A copy of ``node`` with local ``#/$defs/X`` references (``$ref`` and discriminator mappings)
    pointing at the component names chosen for them."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_LOCAL):
                out[key] = _COMPONENTS + names[value.removeprefix(_LOCAL)]
            elif key == "mapping" and isinstance(value, dict):
                out[key] = {
                    k: _COMPONENTS + names[v.removeprefix(_LOCAL)]
                    if isinstance(v, str) and v.startswith(_LOCAL)
                    else v
                    for k, v in value.items()
                }
            else:
                out[key] = _rewrite_refs(value, names)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, names) for item in node]
    return node


def _multipart(request_ref: dict[str, Any], files_param: str) -> dict[str, Any]:
    return {
        "allOf": [
            request_ref,
            {
                "type": "object",
                "properties": {
                    files_param: {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
            },
        ]
    }
