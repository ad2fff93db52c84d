"""OpenAPI generated from the registry, so ``/openapi.json`` and ``/docs`` list every pipeline's
run route with its models and stay right after deploys and undeploys (rebuilt only when the
registry's version changes, never per request).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hayhooks.pipelines.models import LoadedPipeline
from hayhooks.pipelines.service import PipelineService
from hayhooks.server.routes import durable

_REF = "#/components/schemas/{model}"


def install(app: FastAPI, service: PipelineService) -> None:
    cache: dict[str, Any] = {"version": None, "schema": None}

    def openapi() -> dict[str, Any]:
        version = service.registry.version
        if cache["version"] != version or cache["schema"] is None:
            cache["schema"] = build(app, service.registry.all())
            cache["version"] = version
        return cache["schema"]

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI, pipelines: list[LoadedPipeline]) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for pipeline in pipelines:
        if pipeline.run is None:
            continue
        request = _register(components, pipeline.run.request_model)
        response = _register(components, pipeline.run.response_model)
        request_body: dict[str, Any]
        if pipeline.run.files_param:
            request_body = {
                "content": {"multipart/form-data": {"schema": _multipart(request, pipeline.run.files_param)}}
            }
        else:
            request_body = {"required": True, "content": {"application/json": {"schema": request}}}
        schema.setdefault("paths", {})[f"/{pipeline.name}/run"] = {
            "post": {
                "tags": ["pipelines"],
                "summary": f"Run {pipeline.name}",
                "description": pipeline.run.description,
                "operationId": f"run_{pipeline.name.replace('-', '_')}",
                "requestBody": request_body,
                "responses": {
                    "200": {
                        "description": "The pipeline result",
                        "content": {"application/json": {"schema": response}},
                    },
                    "404": {"description": "Pipeline not found"},
                    "422": {"description": "Invalid input"},
                    "500": {"description": "The pipeline failed"},
                },
            }
        }
    schema.setdefault("paths", {}).update(
        durable.openapi_paths(pipelines, lambda m: _register(components, m))
    )
    return schema


def _register(components: dict[str, Any], model: Any) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


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
